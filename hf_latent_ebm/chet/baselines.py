"""Baselines for health event prediction on the same batches as Chet: last-visit repetition, logistic regression on
the bag of codes, a GRU over the visits' multi-hot vectors, and RETAIN. Each takes `PackedCohort.batch` dicts and returns
a `ChetOutput`, so `EHRTrainer` trains and scores them exactly as it does Chet."""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .cohort import is_heart_failure
from .modeling_chet import ChetOutput, patient_visits


def visit_multi_hot(visit_codes: torch.Tensor, visit_mask: torch.Tensor, num_codes: int) -> torch.Tensor:
    """The [V, num_codes] multi-hot vectors of padded visits."""
    multi_hot = torch.zeros(len(visit_codes), num_codes, device=visit_codes.device)
    # amax, not a plain scatter: a padding slot (code 0, value 0) must not overwrite a real code 0.
    return multi_hot.scatter_reduce_(1, visit_codes, visit_mask.float(), reduce="amax")


def _output(logits: torch.Tensor, labels: torch.Tensor | None, task: str) -> ChetOutput:
    if task == "heart_failure":
        logits = logits.squeeze(-1)
    loss = None if labels is None else nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
    return ChetOutput(loss=loss, logits=logits)


class _Baseline(nn.Module):
    def __init__(self, code_names: list[str], task: str):
        super().__init__()
        self.code_names, self.task, self.num_codes = list(code_names), task, len(code_names)
        self.num_outputs = self.num_codes if task == "diagnosis" else 1
        # Heart failure: the probability above which a patient is flagged, chosen on validation by the trainer
        # (`chet.training.choose_decision_threshold`) as for Chet; None until then (0.5 is used).
        self.decision_threshold: float | None = None


class LastVisitBaseline(_Baseline):
    """
    Predicts that the last input visit repeats: its codes score highest, the others are ranked by their training
    frequency (`fit_frequencies`); for heart failure, the probability is high when the last visit has a 428.x code.
    Nothing to train.
    """

    trainable = False

    def __init__(self, code_names: list[str], task: str = "diagnosis"):
        super().__init__(code_names, task)
        self.register_buffer("frequencies", torch.zeros(self.num_codes))
        is_hf = [is_heart_failure(code) for code in self.code_names]
        self.register_buffer("is_heart_failure", torch.tensor(is_hf, dtype=torch.float))

    def fit_frequencies(self, cohort) -> "LastVisitBaseline":
        counts = torch.bincount(cohort.codes, minlength=self.num_codes).float()
        self.frequencies.copy_(counts / counts.max().clamp(min=1))
        return self

    def forward(self, visit_codes, visit_mask, visit_patient, visit_position, labels=None, **unused) -> ChetOutput:
        multi_hot = visit_multi_hot(visit_codes, visit_mask, self.num_codes)
        padded, lengths = patient_visits(multi_hot, visit_patient, visit_position)
        last = padded[torch.arange(len(lengths), device=padded.device), lengths - 1]
        if self.task == "heart_failure":
            logits = 8.0 * (last @ self.is_heart_failure).clamp(max=1) - 4.0
        else:  # a repeated code's logit of 8 beats any frequency tie-break (below 1)
            logits = 8.0 * last + self.frequencies
        return _output(logits, labels, self.task)


class BagOfCodesLogistic(_Baseline):
    """Logistic regression (one per code for diagnosis) on which codes the patient ever had."""

    trainable = True

    def __init__(self, code_names: list[str], task: str = "diagnosis"):
        super().__init__(code_names, task)
        self.linear = nn.Linear(self.num_codes, self.num_outputs)

    def forward(self, visit_codes, visit_mask, visit_patient, visit_position, labels=None, **unused) -> ChetOutput:
        multi_hot = visit_multi_hot(visit_codes, visit_mask, self.num_codes)
        padded, _ = patient_visits(multi_hot, visit_patient, visit_position)
        return _output(self.linear(padded.amax(dim=1)), labels, self.task)


class VisitGRU(_Baseline):
    """A GRU over the patient's visits, each a linear embedding of its multi-hot vector (Dipole/GRU-style)."""

    trainable = True

    def __init__(self, code_names: list[str], task: str = "diagnosis", hidden_dim: int = 128, dropout: float = 0.3):
        super().__init__(code_names, task)
        self.embedding = nn.Linear(self.num_codes, hidden_dim)
        self.gru = nn.GRU(hidden_dim, hidden_dim, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_dim, self.num_outputs)

    def forward(self, visit_codes, visit_mask, visit_patient, visit_position, labels=None, **unused) -> ChetOutput:
        embedded = torch.relu(self.embedding(visit_multi_hot(visit_codes, visit_mask, self.num_codes)))
        padded, lengths = patient_visits(embedded, visit_patient, visit_position)
        _, last = self.gru(pack_padded_sequence(padded, lengths.cpu(), batch_first=True, enforce_sorted=False))
        return _output(self.classifier(self.dropout(last[0])), labels, self.task)


class RETAIN(_Baseline):
    """
    RETAIN (Choi et al., NeurIPS 2016): two GRUs read the visit embeddings in reverse time; one gives each visit a
    weight (softmax over visits), the other each embedding dimension a gate (tanh); the patient is the sum of the
    gated, weighted visit embeddings.
    """

    trainable = True

    def __init__(self, code_names: list[str], task: str = "diagnosis", hidden_dim: int = 128, dropout: float = 0.3):
        super().__init__(code_names, task)
        self.embedding = nn.Linear(self.num_codes, hidden_dim, bias=False)
        self.visit_gru = nn.GRU(hidden_dim, hidden_dim, batch_first=True)
        self.variable_gru = nn.GRU(hidden_dim, hidden_dim, batch_first=True)
        self.visit_weight = nn.Linear(hidden_dim, 1)
        self.variable_gate = nn.Linear(hidden_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_dim, self.num_outputs)

    def forward(self, visit_codes, visit_mask, visit_patient, visit_position, labels=None, **unused) -> ChetOutput:
        embedded = self.embedding(visit_multi_hot(visit_codes, visit_mask, self.num_codes))
        # Reverse each patient's visits (the last visit first), as RETAIN reads them.
        lengths = torch.zeros(int(visit_patient.max()) + 1, dtype=torch.long, device=embedded.device).index_add_(
            0, visit_patient, torch.ones_like(visit_patient))
        reversed_position = lengths[visit_patient] - 1 - visit_position
        padded, _ = patient_visits(embedded, visit_patient, reversed_position)
        present = torch.arange(padded.shape[1], device=padded.device) < lengths.unsqueeze(1)

        def read(gru):
            packed = pack_padded_sequence(padded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            states, _ = gru(packed)
            return nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=padded.shape[1])[0]

        scores = self.visit_weight(read(self.visit_gru)).squeeze(-1).masked_fill(~present, float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        gates = torch.tanh(self.variable_gate(read(self.variable_gru)))
        patients = (weights * gates * padded).sum(dim=1)
        return _output(self.classifier(self.dropout(patients)), labels, self.task)


BASELINES = {"last_visit": LastVisitBaseline, "logistic_regression": BagOfCodesLogistic, "gru": VisitGRU,
             "retain": RETAIN}

__all__ = ["BASELINES", "LastVisitBaseline", "BagOfCodesLogistic", "VisitGRU", "RETAIN", "visit_multi_hot"]
