"""The reference code's way of running Chet: a Python loop over patients and their visits on dense masks over all
codes (as `LuChang-CS/Chet`'s models/model.py and layers.py do), with the parameters of a
`ChetForHealthEventPrediction`. It exists to check the batched model against (tests) and to time it against
(`scripts/bench_ehr.py`); the library never trains with it."""

import torch
from torch import nn

from .cohort import EMERGING_NEIGHBOUR, EMERGING_UNRELATED, PERSISTENT


def dense_patient(cohort, patient: int):
    """One patient's input visits as the reference stores them: code and neighbour masks [T, C] and roles [T, C, 3]
    (the dense arrays the batched path never builds)."""
    num_codes = cohort.num_codes
    visits = range(int(cohort.visit_offsets[patient]), int(cohort.visit_offsets[patient + 1]))
    codes = torch.zeros(len(visits), num_codes)
    neighbours = torch.zeros(len(visits), num_codes)
    roles = torch.zeros(len(visits), num_codes, 3)
    for t, visit in enumerate(visits):
        span = slice(int(cohort.code_offsets[visit]), int(cohort.code_offsets[visit + 1]))
        codes[t, cohort.codes[span]] = 1
        roles[t, cohort.codes[span], cohort.roles[span]] = 1
        neighbours[t, cohort.neighbours[cohort.neighbour_offsets[visit]:cohort.neighbour_offsets[visit + 1]]] = 1
    return codes, neighbours, roles


def reference_logits(model, dense_patients: list) -> torch.Tensor:
    """Logits of each patient in `dense_patients` (from `dense_patient`), one patient and one visit at a time."""
    adjacency = model.adjacency()
    c = model.code_embeddings.weight
    n = model.neighbour_embeddings.weight
    u = model.unrelated_embeddings.weight
    hidden_dim = model.config.hidden_dim
    patients, all_code_scores = [], []
    for codes, neighbours, roles in dense_patients:
        codes, neighbours, roles = codes.to(c.device), neighbours.to(c.device), roles.to(c.device)
        hidden = None
        previous_no = None
        visit_vectors = []
        for t in range(len(codes)):
            m_c, m_n = codes[t].unsqueeze(-1), neighbours[t].unsqueeze(-1)
            center, neighbour = m_c * c, m_n * n
            co = nn.functional.leaky_relu(model.graph_dense(center + m_c * (adjacency @ center) +
                                                            m_c * (adjacency @ neighbour)))
            no = nn.functional.leaky_relu(model.graph_dense(neighbour + m_n * (adjacency @ neighbour) +
                                                            m_n * (adjacency @ center)))
            persistent = torch.where(roles[t, :, PERSISTENT] > 0)[0]
            emerging_n = torch.where(roles[t, :, EMERGING_NEIGHBOUR] > 0)[0]
            emerging_u = torch.where(roles[t, :, EMERGING_UNRELATED] > 0)[0]
            new_hidden = torch.zeros(len(c), hidden_dim, device=c.device)
            pooled = []
            if len(persistent):
                start = hidden[persistent] if hidden is not None else torch.zeros(len(persistent), hidden_dim,
                                                                                  device=c.device)
                step, _ = model.gru(co[persistent].unsqueeze(1), start.unsqueeze(0))
                new_hidden[persistent] = step[:, 0]
                pooled.append(step[:, 0].amax(0))
            emerging = torch.cat([emerging_n, emerging_u])
            if t > 0 and len(emerging):
                queries = torch.cat([previous_no[emerging_n], u[emerging_u]])
                scores = model.query(queries) @ model.key(queries).T / model.config.transition_attention_dim**0.5
                attended = torch.tanh(torch.softmax(scores, dim=-1) @ model.value(co[emerging]))
                new_hidden[emerging] = attended
                pooled.append(attended.amax(0))
            visit_vectors.append(torch.stack(pooled).amax(0))
            hidden, previous_no = new_hidden, no
        if model.code_readout is not None:  # the last visit's codes score themselves from their hidden states
            all_code_scores.append(model.code_readout(model.dropout(hidden)).squeeze(-1) * codes[-1])
        visits = torch.stack(visit_vectors)
        patients.append(model.visit_attention(visits, torch.ones(len(visits), dtype=torch.bool, device=c.device)))
    logits = model.classifier(model.dropout(torch.stack(patients)))
    if model.code_readout is not None:
        logits = logits + torch.stack(all_code_scores)
    return logits.squeeze(-1) if model.config.task == "heart_failure" else logits


__all__ = ["dense_patient", "reference_logits"]
