"""Configuration of Chet (Lu, Han & Ning, AAAI 2022): health event prediction over dynamic disease graphs."""

from dataclasses import field

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from ..validation import raise_value_errors, require_at_least

TASKS = ("diagnosis", "heart_failure")
# The paper's training schedules (epoch -> learning rate from that epoch on), per task.
LEARNING_RATE_SCHEDULES = {"diagnosis": [[0, 0.01], [20, 0.001], [30, 0.00001]],
                           "heart_failure": [[0, 0.01], [2, 0.001], [3, 0.0001], [20, 0.00001]]}
DROPOUTS = {"diagnosis": 0.45, "heart_failure": 0.0}


@raise_value_errors
@strict
class ChetConfig(PreTrainedConfig):
    r"""
    Configuration of [`ChetForHealthEventPrediction`].

    Args:
        task (`str`, *optional*, defaults to `"diagnosis"`):
            "diagnosis" (multi-label: the codes of the next visit) or "heart_failure" (binary: a 428.x code in the
            next visit).
        code_names (`list[str]`, *optional*):
            The vocabulary: the dotted ICD-9 code of each code id (the train split's codes, sorted).
        num_graph_edges (`int`, *optional*, defaults to 0):
            Edges of the co-occurrence graph, whose keys and weights are saved with the weights.
        code_embedding_dim (`int`, *optional*, defaults to 48):
            Size of the diagnosis (c) and neighbour (n) embeddings.
        graph_dim (`int`, *optional*, defaults to 32):
            Output size of the graph layer and of the unrelated-code embedding u.
        hidden_dim (`int`, *optional*, defaults to 150):
            Hidden size of the persistent codes' GRU and output size of the emerging codes' attention.
        transition_attention_dim (`int`, *optional*, defaults to 32):
            Query/key size of the emerging codes' self-attention.
        visit_attention_dim (`int`, *optional*, defaults to 32):
            Context size of the attention over visits.
        code_readout (`bool`, *optional*, defaults to `True`):
            Diagnosis only: each code of the last input visit adds a linear read-out of its own hidden state to its
            own logit, beside the paper's classifier on the pooled patient. The paper's model pools every code into
            one `hidden_dim` vector before a linear classifier, which cannot keep each code's identity when the
            codes outnumber the hidden units, so it could not learn "this code recurs" (docs/ehr.md, "Why Chet
            trailed"). False is the paper's model exactly. Ignored for heart failure.
        dropout (`float`, *optional*):
            Dropout before the classifier; None takes the paper's (0.45 for diagnosis, 0 for heart failure).
        learning_rate_schedule (`list`, *optional*):
            [[epoch, learning rate], ...] for Adam, from epoch 0; None takes the paper's for the task.
        decision_threshold (`float`, *optional*):
            Heart failure only: `predict` flags a patient when the probability is above it. `EHRTrainer` sets it to
            the F1-optimal threshold on the validation split at the selected epoch
            (`hf_latent_ebm.metrics.ehr.f1_optimal_threshold`); None (a model not trained by it) takes 0.5.
    """

    model_type = "chet"

    task: str = "diagnosis"
    code_names: list[str] = field(default_factory=list)
    num_graph_edges: int = 0
    code_embedding_dim: int = 48
    graph_dim: int = 32
    hidden_dim: int = 150
    transition_attention_dim: int = 32
    visit_attention_dim: int = 32
    code_readout: bool = True
    dropout: float | None = None
    learning_rate_schedule: list | None = None
    decision_threshold: float | None = None

    def validate_chet(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if len(set(self.code_names)) != len(self.code_names):
            raise ValueError("code_names has duplicates")
        require_at_least(self, ("code_embedding_dim", "graph_dim", "hidden_dim", "transition_attention_dim",
                                "visit_attention_dim"))
        require_at_least(self, ("num_graph_edges",), 0)
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        schedule = self.learning_rate_schedule
        if schedule is not None and (
                not schedule or schedule[0][0] != 0 or any(len(step) != 2 or not step[1] > 0 for step in schedule)
                or [step[0] for step in schedule] != sorted({step[0] for step in schedule})):
            raise ValueError("learning_rate_schedule must be [[0, lr], [epoch, lr], ...] with increasing epochs and "
                             f"positive rates, got {schedule}")
        if self.decision_threshold is not None:
            if self.task != "heart_failure":
                raise ValueError("decision_threshold is for task 'heart_failure' (diagnosis ranks the codes), got "
                                 f"{self.decision_threshold} for task {self.task!r}")
            if isinstance(self.decision_threshold, bool) or not 0 <= self.decision_threshold <= 1:
                raise ValueError(f"decision_threshold must be a probability in [0, 1], got {self.decision_threshold}")

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> "ChetConfig":
        # A checkpoint saved before `code_readout` existed is the paper's model: load it as that, weights and all.
        if config_dict.get("model_type") == cls.model_type and "code_readout" not in config_dict:
            config_dict = {**config_dict, "code_readout": False}
        return super().from_dict(config_dict, **kwargs)

    @property
    def num_codes(self) -> int:
        return len(self.code_names)

    @property
    def num_outputs(self) -> int:
        return self.num_codes if self.task == "diagnosis" else 1

    @property
    def uses_code_readout(self) -> bool:
        return self.code_readout and self.task == "diagnosis"

    @property
    def effective_dropout(self) -> float:
        """`dropout`, or the paper's for the task when it is None."""
        return DROPOUTS[self.task] if self.dropout is None else self.dropout

    @property
    def effective_learning_rate_schedule(self) -> list:
        """`learning_rate_schedule`, or the paper's for the task when it is None."""
        schedule = self.learning_rate_schedule
        return LEARNING_RATE_SCHEDULES[self.task] if schedule is None else schedule

    def learning_rate_at(self, epoch: int) -> float:
        return [rate for start, rate in self.effective_learning_rate_schedule if start <= epoch][-1]


__all__ = ["ChetConfig", "TASKS"]
