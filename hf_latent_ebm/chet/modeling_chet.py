"""Chet (Lu, Han & Ning, AAAI 2022, arXiv 2112.05195) as a transformers PreTrainedModel, batched over patients and
visits.

The reference code loops in Python over patients and visits and works on dense masks over all codes. Here one
`forward` handles a whole batch: the graph layer runs on every visit at once restricted to the codes it touches
(its codes and their neighbours: every other code is masked out in the reference, so it contributes nothing), the
emerging codes' attention runs on every visit at once with masks, and the persistent codes' GRU runs along every
run of a code through consecutive visits at once, one cell step per visit of the longest run (`gru_along_runs`).
`hf_latent_ebm.chet.reference` holds the per-patient loop, checked against this in the tests and timed against it in
`scripts/bench_ehr.py`.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..metrics.ehr import DEFAULT_THRESHOLD
from ..modeling_utils import CardedModelMixin, init_pytorch_default
from .cohort import EMERGING_NEIGHBOUR, PERSISTENT, CooccurrenceGraph
from .configuration_chet import ChetConfig


def patient_visits(values: torch.Tensor, visit_patient: torch.Tensor, visit_position: torch.Tensor):
    """Per-visit rows [V, D] as [patients, visits, D], and each patient's number of visits."""
    num_patients, num_positions = int(visit_patient.max()) + 1, int(visit_position.max()) + 1
    padded = values.new_zeros(num_patients, num_positions, values.shape[-1]).index_put(
        (visit_patient, visit_position), values)
    lengths = torch.zeros(num_patients, dtype=torch.long, device=values.device).index_add_(
        0, visit_patient, torch.ones_like(visit_patient))
    return padded, lengths


def gru_along_runs(gru: nn.GRU, inputs: torch.Tensor, states: torch.Tensor, run_steps: torch.Tensor,
                   run_lengths: torch.Tensor, run_start: torch.Tensor, run_starts_emerging: torch.Tensor):
    """
    `gru` (one layer) along every run at once: run r reads rows `inputs[run_steps[r, s]]` for s < run_lengths[r]
    and starts from `states[run_start[r]]` where `run_starts_emerging[r]`, from zero elsewhere. Returns the rows
    of every step (`slots`) and the hidden state after it, step after step.

    Most runs are one or two visits long, so a packed `nn.GRU` spent its time packing, padding and, in its
    backward, zero-filling the whole sequence for every step's slice. Here the runs are sorted longest first, so
    the runs still going at step s are the first n_s: the input products of all steps are one matrix product, and
    each step is one hidden product on a prefix and the cell's gates (PyTorch's GRU equations). A zero start
    needs no hidden product: its gates are the bias, so step 0 multiplies only the runs started from a state.
    """
    hidden_dim = gru.hidden_size
    # One copy to the host (as pack_padded_sequence made): the step sizes n_s and the started runs.
    host = torch.stack([run_lengths, run_starts_emerging.long()]).cpu()
    order = torch.argsort(host[0], descending=True, stable=True)
    running = (host[0].unsqueeze(0) > torch.arange(run_steps.shape[1]).unsqueeze(1)).sum(1).tolist()
    carried = torch.nonzero(host[1, order]).flatten().to(run_steps.device)
    order = order.to(run_steps.device)
    steps = run_steps[order]
    slots = torch.cat([steps[:n, s] for s, n in enumerate(running)]) if running else run_steps.new_zeros(0)
    input_gates = nn.functional.linear(inputs[slots], gru.weight_ih_l0, gru.bias_ih_l0)
    weight, bias = gru.weight_hh_l0, gru.bias_hh_l0
    started = states[run_start[order[carried]]]
    hidden = states.new_zeros(len(order), hidden_dim).index_put((carried,), started)
    hidden_gates = bias.expand(len(order), -1).index_put((carried,), nn.functional.linear(started, weight, bias))
    outputs = []
    for step, (size, gates) in enumerate(zip(running, input_gates.split(running))):
        if step:
            hidden = hidden[:size]
            hidden_gates = nn.functional.linear(hidden, weight, bias)
        input_reset, input_update, input_new = gates.chunk(3, 1)
        hidden_reset, hidden_update, hidden_new = hidden_gates.chunk(3, 1)
        reset = torch.sigmoid(input_reset + hidden_reset)
        update = torch.sigmoid(input_update + hidden_update)
        new = torch.tanh(input_new + reset * hidden_new)
        hidden = (hidden - new) * update + new
        outputs.append(hidden)
    return slots, torch.cat(outputs) if outputs else states.new_zeros(0, hidden_dim)


@dataclass
class ChetOutput(ModelOutput):
    """
    Args:
        loss (`torch.Tensor`, *optional*): Binary cross-entropy against `labels`, when given.
        logits (`torch.Tensor` of shape `(batch_size, num_codes)` or `(batch_size,)`): Per-code logits of the next
            visit (diagnosis) or the heart-failure logit.
        patient_embeddings (`torch.Tensor` of shape `(batch_size, hidden_dim)`): The attention-pooled patients.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    patient_embeddings: torch.Tensor | None = None


class ChetPreTrainedModel(CardedModelMixin, PreTrainedModel):
    config: ChetConfig
    config_class = ChetConfig
    base_model_prefix = "chet"
    main_input_name = "visit_codes"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        # The code embeddings Xavier-uniform, as the reference; linear and GRU layers PyTorch's defaults; the visit
        # context vector uniform in +-1/sqrt(size) (the reference draws it Xavier-uniform as a column).
        if isinstance(module, nn.Embedding):
            init.xavier_uniform_(module.weight)
        elif isinstance(module, (nn.Linear, nn.GRU)):
            init_pytorch_default(module)
        elif isinstance(module, VisitAttention):
            init.uniform_(module.context, -1 / module.context.shape[0]**0.5, 1 / module.context.shape[0]**0.5)


class VisitAttention(nn.Module):
    """Attention pooling of a patient's visits with a learned context vector (the reference's DotProductAttention)."""

    def __init__(self, hidden_dim: int, attention_dim: int):
        super().__init__()
        self.dense = nn.Linear(hidden_dim, attention_dim)
        self.context = nn.Parameter(torch.empty(attention_dim))

    def forward(self, visits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = (self.dense(visits) @ self.context).masked_fill(~mask, torch.finfo(visits.dtype).min)
        return (torch.softmax(scores, dim=-1).unsqueeze(-1) * visits).sum(-2)


class ChetForHealthEventPrediction(ChetPreTrainedModel):
    r"""
    Chet: per-code embeddings (diagnosis c, neighbour n, unrelated u), a graph layer over the global co-occurrence
    graph A restricted to each visit's codes and neighbours, transition functions (a GRU carries a persistent code's
    hidden state from the previous visit; emerging codes get theirs from self-attention with queries from the
    previous visit's neighbour embedding or from u), max-pooling into a visit vector, attention over visits and a
    linear classifier.

    Args:
        config ([`ChetConfig`]): Task, vocabulary, graph size and layer sizes.
    """

    def __init__(self, config: ChetConfig):
        super().__init__(config)
        num_codes, code_dim, graph_dim, hidden_dim = (config.num_codes, config.code_embedding_dim, config.graph_dim,
                                                      config.hidden_dim)
        self.code_embeddings = nn.Embedding(num_codes, code_dim)
        self.neighbour_embeddings = nn.Embedding(num_codes, code_dim)
        self.unrelated_embeddings = nn.Embedding(num_codes, graph_dim)
        self.graph_dense = nn.Linear(code_dim, graph_dim)
        self.gru = nn.GRU(graph_dim, hidden_dim, batch_first=True)
        self.query = nn.Linear(graph_dim, config.transition_attention_dim)
        self.key = nn.Linear(graph_dim, config.transition_attention_dim)
        self.value = nn.Linear(graph_dim, hidden_dim)
        self.visit_attention = VisitAttention(hidden_dim, config.visit_attention_dim)
        self.dropout = nn.Dropout(config.effective_dropout)
        self.classifier = nn.Linear(hidden_dim, config.num_outputs)
        # Diagnosis: a code of the last input visit also scores itself from its own hidden state (docs/ehr.md, "Why
        # Chet trailed"): the pooled patient vector cannot carry every code's identity when codes outnumber its units.
        self.code_readout = nn.Linear(hidden_dim, 1) if config.uses_code_readout else None
        # The graph travels with the weights (sorted keys i * num_codes + j and weights A_ij).
        self.register_buffer("graph_keys", torch.zeros(config.num_graph_edges, dtype=torch.long))
        self.register_buffer("graph_weights", torch.zeros(config.num_graph_edges))
        self._dense_graph = None
        self.post_init()

    @classmethod
    def from_cohort(cls, vocabulary: list[str], graph: CooccurrenceGraph, task: str = "diagnosis",
                    **config_kwargs) -> "ChetForHealthEventPrediction":
        """A fresh model for a prepared cohort's vocabulary and graph (`hf_latent_ebm.chet.prepare_cohort`)."""
        if graph.num_codes != len(vocabulary):
            raise ValueError(f"the graph has {graph.num_codes} codes, the vocabulary {len(vocabulary)}")
        config = ChetConfig(task=task, code_names=list(vocabulary), num_graph_edges=graph.num_edges, **config_kwargs)
        model = cls(config)
        model.graph_keys.copy_(graph.edge_keys)
        model.graph_weights.copy_(graph.edge_weights)
        return model

    @property
    def graph(self) -> CooccurrenceGraph:
        return CooccurrenceGraph(self.config.num_codes, self.graph_keys.cpu(), self.graph_weights.cpu())

    def adjacency(self) -> torch.Tensor:
        """The dense A the graph layer gathers from, rebuilt only when the graph buffers or their device change."""
        key = (self.graph_weights.device, self.graph_weights.data_ptr(), self.graph_weights._version,
               self.graph_keys._version)
        if self._dense_graph is None or self._dense_graph[0] != key:
            graph = CooccurrenceGraph(self.config.num_codes, self.graph_keys, self.graph_weights)
            self._dense_graph = (key, graph.dense(self.graph_weights.device))
        return self._dense_graph[1]

    def graph_layer(self, visit_codes, visit_mask, visit_neighbours, neighbour_mask, next_neighbour_codes,
                    next_neighbour_mask):
        """Graph-layer outputs of every visit: rows for its codes (co) then for the next visit's emerging-neighbour
        codes (their neighbour output no); each row i is LeakyReLU(W(e_i + sum_j A_ij e_j)) over the visit's codes
        (e = c) and neighbours (e = n)."""
        rows = torch.cat([visit_codes, next_neighbour_codes], dim=1)
        row_is_code = torch.cat([visit_mask, torch.zeros_like(next_neighbour_mask)], dim=1)
        columns = torch.cat([visit_codes, visit_neighbours], dim=1)
        column_mask = torch.cat([visit_mask, neighbour_mask], dim=1)
        column_is_code = torch.cat([visit_mask, torch.zeros_like(neighbour_mask)], dim=1)
        column_embeddings = torch.where(column_is_code.unsqueeze(-1), self.code_embeddings(columns),
                                        self.neighbour_embeddings(columns)) * column_mask.unsqueeze(-1)
        own = torch.where(row_is_code.unsqueeze(-1), self.code_embeddings(rows), self.neighbour_embeddings(rows))
        weights = self.adjacency()[rows.unsqueeze(-1), columns.unsqueeze(-2)]
        return nn.functional.leaky_relu(self.graph_dense(own + weights @ column_embeddings))

    def forward(self, visit_codes: torch.Tensor, visit_roles: torch.Tensor, visit_mask: torch.Tensor,
                visit_neighbours: torch.Tensor, neighbour_mask: torch.Tensor, visit_patient: torch.Tensor,
                visit_position: torch.Tensor, next_neighbour_codes: torch.Tensor, next_neighbour_mask: torch.Tensor,
                query_index: torch.Tensor, run_steps: torch.Tensor, run_lengths: torch.Tensor,
                run_start: torch.Tensor, run_starts_emerging: torch.Tensor, labels: torch.Tensor | None = None,
                return_dict: bool | None = None) -> ChetOutput | tuple:
        r"""
        The inputs are what `PackedCohort.batch` builds for a set of patients (see its docstring): V input
        visits padded to K codes, with their roles, neighbours and runs.

        labels (`torch.Tensor`, *optional*): Multi-hot next-visit codes `(batch_size, num_codes)` for diagnosis, or
            0/1 `(batch_size,)` for heart failure.
        """
        num_visits, width = visit_codes.shape
        hidden_dim = self.config.hidden_dim
        graph = self.graph_layer(visit_codes, visit_mask, visit_neighbours, neighbour_mask, next_neighbour_codes,
                                 next_neighbour_mask)
        code_outputs = graph[:, :width]
        # Emerging codes: self-attention within the visit, queries from the previous visit's neighbour output
        # (emerging neighbours) or the unrelated embedding u, values from the codes' graph outputs.
        queries = torch.where((visit_roles == EMERGING_NEIGHBOUR).unsqueeze(-1),
                              graph.reshape(-1, graph.shape[-1])[query_index], self.unrelated_embeddings(visit_codes))
        emerging = visit_mask & (visit_roles != PERSISTENT)
        scores = self.query(queries) @ self.key(queries).transpose(-1, -2) / self.config.transition_attention_dim**0.5
        scores = scores.masked_fill(~emerging.unsqueeze(1), torch.finfo(scores.dtype).min)
        emerging_hidden = torch.tanh(torch.softmax(scores, dim=-1) @ self.value(code_outputs))
        # Persistent codes: a GRU along each run of a code through consecutive visits, started from zero at a first
        # visit or from the attention output of the visit where the code emerged. The persistent occurrences are
        # exactly the runs' steps: their hidden states replace the attention outputs there (padding slots keep
        # theirs, masked out below).
        flat_emerging = emerging_hidden.reshape(num_visits * width, hidden_dim)
        slots, run_hidden = gru_along_runs(self.gru, code_outputs.reshape(num_visits * width, -1), flat_emerging,
                                           run_steps, run_lengths, run_start, run_starts_emerging)
        code_hidden = flat_emerging.index_put((slots,), run_hidden).view(num_visits, width, hidden_dim)
        visit_vectors = code_hidden.masked_fill(~visit_mask.unsqueeze(-1), float("-inf")).amax(dim=1)
        padded, lengths = patient_visits(visit_vectors, visit_patient, visit_position)
        # A patient's visits sit at positions 0 .. length - 1.
        present = torch.arange(padded.shape[1], device=padded.device) < lengths.unsqueeze(1)
        patients = self.visit_attention(padded, present)
        logits = self.classifier(self.dropout(patients))
        if self.code_readout is not None:
            logits = logits + self.last_visit_code_scores(code_hidden, visit_codes, visit_mask, visit_patient,
                                                          visit_position, lengths, logits.shape[-1])
        if self.config.task == "heart_failure":
            logits = logits.squeeze(-1)
        loss = None
        if labels is not None:
            loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        if return_dict is False:
            return tuple(value for value in (loss, logits, patients) if value is not None)
        return ChetOutput(loss=loss, logits=logits, patient_embeddings=patients)

    def last_visit_code_scores(self, code_hidden, visit_codes, visit_mask, visit_patient, visit_position, lengths,
                               num_codes: int) -> torch.Tensor:
        """[patients, num_codes]: each code of a patient's last input visit gets the read-out of its own hidden state
        there (persistent: the GRU's; emerging: the attention's), the other codes 0."""
        # Each patient's last visit row by a scatter (a boolean mask would cost a device sync): the row with the
        # highest position, encoded with the row so the maximum names it.
        num_visits = len(visit_position)
        rows = torch.arange(num_visits, device=visit_position.device)
        last = lengths.new_zeros(len(lengths)).scatter_reduce(0, visit_patient, visit_position * num_visits + rows,
                                                              reduce="amax", include_self=False) % num_visits
        scores = self.code_readout(self.dropout(code_hidden[last])).squeeze(-1) * visit_mask[last]
        patients = torch.arange(len(lengths), device=scores.device).unsqueeze(-1).expand_as(scores)
        # Padding slots add 0 (masked above), so accumulating onto code 0 through them changes nothing.
        return scores.new_zeros(len(lengths), num_codes).index_put((patients, visit_codes[last]), scores,
                                                                   accumulate=True)

    @property
    def decision_threshold(self) -> float | None:
        """Heart failure: the probability above which `decide` and `predict` flag a patient
        (`config.decision_threshold`, chosen on validation by `EHRTrainer`; 0.5 without one); None for diagnosis."""
        if self.config.task != "heart_failure":
            return None
        return DEFAULT_THRESHOLD if self.config.decision_threshold is None else self.config.decision_threshold

    @decision_threshold.setter
    def decision_threshold(self, value: float | None) -> None:
        if self.config.task != "heart_failure" and value is not None:
            raise ValueError(f"a decision threshold is for task 'heart_failure', this model's task is "
                             f"{self.config.task!r}")
        if value is not None and not 0 <= value <= 1:
            raise ValueError(f"decision_threshold must be a probability in [0, 1], got {value}")
        self.config.decision_threshold = None if value is None else float(value)

    def decide(self, probabilities: torch.Tensor) -> torch.Tensor:
        """Heart-failure decisions (bool) from probabilities: probability > `decision_threshold`, compared in
        float64 so that a threshold between two float32 scores separates them as it did on validation."""
        if self.config.task != "heart_failure":
            raise ValueError("decisions are for task 'heart_failure'; a diagnosis model ranks the codes (take the "
                             "top k of predict's scores)")
        return torch.as_tensor(probabilities).double() > self.decision_threshold

    def predict(self, records, batch_size: int = 256, return_decisions: bool = False):
        """
        Scores for the visit after the last one of each patient in `records` (a patients dataset as
        `hf_latent_ebm.data.ehr` loads: a `visits` column of dotted ICD-9 code lists): sigmoid scores over the
        vocabulary (diagnosis) or the heart-failure probability, one row per patient in the order of `records`, and
        the number of codes outside the model's vocabulary that were left out. With `return_decisions=True` (heart
        failure only) a third item: the bool decision per patient, probability > `decision_threshold` (the
        F1-optimal threshold chosen on the validation split when the model was trained, 0.5 without one).
        """
        from .cohort import PackedCohort, encode_patients
        from .scoring import predict_scores

        if return_decisions and self.config.task != "heart_failure":
            raise ValueError("return_decisions is for task 'heart_failure'; a diagnosis model ranks the codes")
        encoded, unknown_codes = encode_patients(records, self.config.code_names, self.graph, with_targets=False)
        scores = predict_scores(self, PackedCohort(encoded, self.config.num_codes), batch_size)
        return (scores, unknown_codes, self.decide(scores)) if return_decisions else (scores, unknown_codes)


__all__ = ["ChetConfig", "ChetForHealthEventPrediction", "ChetOutput", "ChetPreTrainedModel"]
