"""`python -m hf_latent_ebm.cli`, as the `hf-latent-ebm` command."""

from . import main

main()
