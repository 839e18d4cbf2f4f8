"""From patients' visits of ICD-9 codes to what Chet reads: the patient split, the code vocabulary, the global
co-occurrence graph, each visit's neighbours and each code's diagnosis role, and padded batches.

Everything is stored sparsely (ragged lists of the codes present) and computed with whole-array operations:
memory grows with the number of codes present, never with patients x visits x all codes as in the reference code's
dense [patients, visits, codes] arrays.
"""

import numpy as np
import torch

from .graph import CooccurrenceGraph, _lengths_to_offsets, ragged_positions

# Diagnosis roles of a code at visit t relative to visit t - 1 (at the first visit every code is persistent).
PERSISTENT, EMERGING_NEIGHBOUR, EMERGING_UNRELATED = 0, 1, 2
ROLE_NAMES = ("persistent", "emerging neighbour", "emerging unrelated")
HEART_FAILURE_PREFIX = "428"


def _arrow_lists(column):
    """Offsets and flat values of a list<list<...>> (or list<...>) Arrow column, without converting to Python."""
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = torch.from_numpy(array.offsets.to_numpy().astype(np.int64) - array.offsets[0].as_py())
    return offsets, array.flatten()


def _table(dataset):
    """The Arrow table of a dataset's rows, respecting a `select`'s indices (which `dataset.data` ignores)."""
    return dataset.with_format("arrow")[:]


def _nested_to_flat(column):
    """(patient -> visit offsets, visit -> item offsets, flat numpy items) of a list<list<x>> Arrow column."""
    visit_offsets, visits = _arrow_lists(column)
    item_offsets, items = _arrow_lists(visits)
    return visit_offsets, item_offsets, items.to_numpy(zero_copy_only=False)


# ---- split and vocabulary ------------------------------------------------------------------------------------
def split_patients(records, fractions=(0.7, 0.1, 0.2), seed: int = 0) -> dict:
    """
    Split a patients dataset (a `visits` column of code lists, as `hf_latent_ebm.data.ehr` loads) by patient into
    "train" / "validation" / "test". As in the reference code, for every code one patient holding it goes to train
    so that every code is seen in training (a code only in test could not be predicted); unlike it, a cohort where
    those patients outnumber the train share gets a larger train split instead of a silently wrong one.

    Returns a dict of `datasets.Dataset`s and the number of patients forced into train (key "forced_train").
    """
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions are (train, validation, test), each > 0, summing to 1; got {fractions}")
    num_patients = len(records)
    if num_patients < 3:
        raise ValueError(f"a split needs at least 3 patients, got {num_patients}")
    visit_offsets, code_offsets, codes = _nested_to_flat(_table(records).column("visits"))
    patient_of_code = torch.repeat_interleave(
        torch.repeat_interleave(torch.arange(num_patients), visit_offsets.diff()), code_offsets.diff()).numpy()
    rank = np.empty(num_patients, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(num_patients)
    rank[order] = np.arange(num_patients)
    # For each code, the patient earliest in the shuffled order holding it.
    _, code_ids = np.unique(codes, return_inverse=True)
    by_code = np.lexsort((rank[patient_of_code], code_ids))
    first = np.ones(len(by_code), dtype=bool)
    first[1:] = code_ids[by_code][1:] != code_ids[by_code][:-1]
    forced = np.unique(patient_of_code[by_code][first])
    rest = order[~np.isin(order, forced)]
    num_train = max(int(round(fractions[0] * num_patients)) - len(forced), 0)
    num_valid = max(int(round(fractions[1] * num_patients)), 1)
    train = np.sort(np.concatenate([forced, rest[:num_train]]))
    valid = np.sort(rest[num_train:num_train + num_valid])
    test = np.sort(rest[num_train + num_valid:])
    if len(valid) == 0 or len(test) == 0:
        raise ValueError(f"after forcing {len(forced)} patients into train (one per code) no patients are left for "
                         f"validation or test among {num_patients}; use a larger cohort")
    return {"train": records.select(train), "validation": records.select(valid), "test": records.select(test),
            "forced_train": len(forced)}


def build_vocabulary(records) -> list[str]:
    """The sorted codes of a patients dataset (the train split's: every code occurs there)."""
    _, _, codes = _nested_to_flat(_table(records).column("visits"))
    return np.unique(codes.astype(str)).tolist()


def diagnosis_roles(visit_offsets, code_offsets, codes, neighbour_offsets, neighbours, num_codes: int):
    """The role of every code occurrence: persistent (also in the previous visit, and every code of a first visit),
    emerging neighbour (in the previous visit's neighbours) or emerging unrelated."""
    num_visits = len(code_offsets) - 1
    occurrence_visit = torch.repeat_interleave(torch.arange(num_visits), code_offsets.diff())
    first_visit = torch.zeros(num_visits, dtype=torch.bool)
    first_visit[visit_offsets[:-1][visit_offsets.diff() > 0]] = True
    keys = occurrence_visit * num_codes + codes
    # The previous visit's codes and neighbours, keyed as if they belonged to the visit after them.
    previous_codes = (occurrence_visit + 1) * num_codes + codes
    neighbour_visit = torch.repeat_interleave(torch.arange(num_visits), neighbour_offsets.diff())
    previous_neighbours = (neighbour_visit + 1) * num_codes + neighbours
    roles = torch.full_like(codes, EMERGING_UNRELATED)
    roles[torch.isin(keys, previous_neighbours)] = EMERGING_NEIGHBOUR
    roles[torch.isin(keys, previous_codes) | first_visit[occurrence_visit]] = PERSISTENT
    return roles


# ---- encoding ----------------------------------------------------------------------------------------------------
def _per_distinct_code(strings: np.ndarray, function, dtype) -> torch.Tensor:
    """function(code) for every code occurrence, computed once per distinct code."""
    distinct, inverse = np.unique(strings.astype(str), return_inverse=True)
    return torch.from_numpy(np.array([function(code) for code in distinct.tolist()], dtype=dtype)[inverse])


def _code_ids(strings: np.ndarray, vocabulary: list[str]) -> torch.Tensor:
    """The vocabulary id of every code occurrence, -1 for codes outside it."""
    index = {code: position for position, code in enumerate(vocabulary)}
    return _per_distinct_code(strings, lambda code: index.get(code, -1), np.int64)


def is_heart_failure(code: str) -> bool:
    return code.split(".")[0] == HEART_FAILURE_PREFIX


def encode_patients(records, vocabulary: list[str], graph: CooccurrenceGraph, with_targets: bool = True):
    """
    A patients dataset (`visits` of code strings) as Chet's inputs, a `datasets.Dataset` of ragged lists:
    `codes`, `roles` and `neighbours` of each input visit, and with targets, `target_codes` (the last visit's
    codes, which is then not an input) and `heart_failure` (1 if a 428.x code is in it). Codes outside the
    vocabulary are dropped; their number is returned with the dataset ("unknown_codes"), and a patient left with
    no input visit codes is an error.
    """
    import datasets
    import pyarrow as pa

    table = _table(records)
    visit_offsets, code_offsets, strings = _nested_to_flat(table.column("visits"))
    ids = _code_ids(strings, vocabulary)
    is_hf = _per_distinct_code(strings, is_heart_failure, bool)
    num_patients = len(visit_offsets) - 1
    visit_lengths = visit_offsets.diff()
    if with_targets:
        if (visit_lengths < 2).any():
            raise ValueError("a patient with targets needs two or more visits (inputs, then the predicted one)")
        last_visit = visit_offsets[1:] - 1
        target_positions, target_patient, _ = ragged_positions(code_offsets, last_visit)
        heart_failure = torch.zeros(num_patients, dtype=torch.int64).index_add_(
            0, target_patient, is_hf[target_positions].long()).clamp_(max=1)
        is_input_visit = torch.ones(int(visit_offsets[-1]), dtype=torch.bool)
        is_input_visit[last_visit] = False
    else:
        is_input_visit = torch.ones(int(visit_offsets[-1]), dtype=torch.bool)
    occurrence_visit = torch.repeat_interleave(torch.arange(int(visit_offsets[-1])), code_offsets.diff())
    keep = is_input_visit[occurrence_visit] & (ids >= 0)
    unknown_codes = int((is_input_visit[occurrence_visit] & (ids < 0)).sum())
    # Renumber the input visits and sort each visit's codes (the roles and neighbours are keyed by code id).
    input_visit = torch.cumsum(is_input_visit.long(), 0) - 1
    occurrence = input_visit[occurrence_visit[keep]]
    order = torch.argsort(occurrence * len(vocabulary) + ids[keep])
    codes = ids[keep][order]
    occurrence = occurrence[order]
    num_input_visits = int(is_input_visit.sum())
    input_code_offsets = _lengths_to_offsets(torch.bincount(occurrence, minlength=num_input_visits))
    if (input_code_offsets.diff() == 0).any():
        raise ValueError("a visit has no code of the model's vocabulary left; drop such patients first "
                         f"({unknown_codes} unknown codes were removed)")
    input_visit_offsets = _lengths_to_offsets(visit_lengths - int(with_targets))
    neighbour_offsets, neighbours = graph.neighbours(input_code_offsets, codes)
    roles = diagnosis_roles(input_visit_offsets, input_code_offsets, codes, neighbour_offsets, neighbours,
                            graph.num_codes)

    def nested(item_offsets, values, dtype):
        inner = pa.ListArray.from_arrays(pa.array(item_offsets.numpy()), pa.array(values.numpy(), type=dtype))
        return pa.ListArray.from_arrays(pa.array(input_visit_offsets.numpy()), inner)

    columns = {"patient_id": table.column("patient_id"),
               "codes": nested(input_code_offsets, codes, pa.int32()),
               "roles": nested(input_code_offsets, roles, pa.int8()),
               "neighbours": nested(neighbour_offsets, neighbours, pa.int32())}
    if with_targets:
        target_keep = ids[target_positions] >= 0
        lengths = torch.bincount(target_patient[target_keep], minlength=num_patients)
        columns["target_codes"] = pa.ListArray.from_arrays(
            pa.array(_lengths_to_offsets(lengths).numpy()), pa.array(ids[target_positions][target_keep].numpy(),
                                                                       type=pa.int32()))
        columns["heart_failure"] = pa.array(heart_failure.numpy())
    return datasets.Dataset(pa.table(columns)), unknown_codes


def prepare_cohort(records, fractions=(0.7, 0.1, 0.2), seed: int = 0) -> dict:
    """Split, build the vocabulary and graph from train, and encode every split: a dict with "vocabulary",
    "graph", "train" / "validation" / "test" (encoded datasets) and "forced_train"."""
    splits = split_patients(records, fractions, seed)
    vocabulary = build_vocabulary(splits["train"])
    _, code_offsets, strings = _nested_to_flat(_table(splits["train"]).column("visits"))
    graph = CooccurrenceGraph.fit(code_offsets, _code_ids(strings, vocabulary), len(vocabulary))
    prepared = {"vocabulary": vocabulary, "graph": graph, "forced_train": splits["forced_train"]}
    for name in ("train", "validation", "test"):
        prepared[name], _ = encode_patients(splits[name], vocabulary, graph)
    return prepared


# ---- batches -----------------------------------------------------------------------------------------------------
class PackedCohort:
    """
    An encoded dataset as flat tensors (patients -> visits -> code occurrences, visits -> neighbours) plus the
    runs of persistent codes, from which `batch(patient_indices)` builds padded tensors for any set of patients
    with whole-array operations.

    A run is a code present in consecutive visits of one patient: its hidden state goes through the GRU along the
    run, starting from zero at a first visit or from the attention output where the code emerged.
    """

    def __init__(self, encoded, num_codes: int):
        table = _table(encoded)
        self.num_codes = num_codes
        self.num_patients = len(encoded)
        self.visit_offsets, self.code_offsets, codes = _nested_to_flat(table.column("codes"))
        self.codes = torch.from_numpy(codes.astype(np.int64))
        self.roles = torch.from_numpy(_nested_to_flat(table.column("roles"))[2].astype(np.int64))
        _, self.neighbour_offsets, neighbours = _nested_to_flat(table.column("neighbours"))
        self.neighbours = torch.from_numpy(neighbours.astype(np.int64))
        if len(self.codes) and int(self.codes.max()) >= num_codes:
            raise ValueError(f"the encoded data has code ids up to {int(self.codes.max())}, the model {num_codes} codes")
        num_visits = len(self.code_offsets) - 1
        visit_patient = torch.repeat_interleave(torch.arange(self.num_patients), self.visit_offsets.diff())
        self.visit_position = torch.arange(num_visits) - self.visit_offsets[visit_patient]
        occurrence_visit = torch.repeat_interleave(torch.arange(num_visits), self.code_offsets.diff())
        # Runs: sort occurrences by (patient, code, visit); a run breaks where the code skips a visit.
        patient = visit_patient[occurrence_visit]
        order = np.lexsort((occurrence_visit.numpy(), self.codes.numpy(), patient.numpy()))
        order = torch.from_numpy(order)
        sorted_visit = occurrence_visit[order]
        same_group = torch.zeros(len(order), dtype=torch.bool)
        same_group[1:] = (patient[order][1:] == patient[order][:-1]) & (self.codes[order][1:] == self.codes[order][:-1])
        continues = torch.zeros(len(order), dtype=torch.bool)
        continues[1:] = same_group[1:] & (sorted_visit[1:] == sorted_visit[:-1] + 1)
        run_of_sorted = torch.cumsum(~continues, 0) - 1
        self.occurrence_run = torch.empty_like(run_of_sorted)
        self.occurrence_run[order] = run_of_sorted
        first_sorted = torch.nonzero(~continues).flatten()  # where each run begins in the sorted order
        self.run_start = order[first_sorted]  # its first occurrence (the earliest visit)
        # Step of each persistent occurrence along its run's GRU (an emerging start is the GRU's initial state).
        starts_emerging = self.roles[self.run_start] != PERSISTENT
        step = torch.arange(len(order)) - first_sorted[run_of_sorted] - starts_emerging[run_of_sorted].long()
        self.occurrence_step = torch.empty_like(step)
        self.occurrence_step[order] = step
        self.run_starts_emerging = starts_emerging
        run_patient = patient[self.run_start]  # runs are numbered patient by patient
        self.run_offsets = _lengths_to_offsets(torch.bincount(run_patient, minlength=self.num_patients))
        self.patient_code_offsets = self.code_offsets[self.visit_offsets]
        # Rank of an emerging-neighbour occurrence among those of its visit (its row in the previous visit's graph
        # block).
        is_neighbour = (self.roles == EMERGING_NEIGHBOUR).long()
        before = torch.cumsum(is_neighbour, 0) - is_neighbour
        self.neighbour_rank = before - before[self.code_offsets[:-1]][occurrence_visit]
        self.neighbour_count = torch.zeros(num_visits, dtype=torch.long).index_add_(0, occurrence_visit, is_neighbour)
        if "target_codes" in table.column_names:
            self.target_offsets, targets = _arrow_lists(table.column("target_codes"))
            self.targets = torch.from_numpy(targets.to_numpy().astype(np.int64))
            self.heart_failure = torch.from_numpy(table.column("heart_failure").to_numpy().astype(np.int64))

    def __len__(self) -> int:
        return self.num_patients

    @property
    def has_targets(self) -> bool:
        return hasattr(self, "targets")

    def batch(self, patients: torch.Tensor, task: str | None = None) -> dict:
        """
        Padded tensors for `patients` (indices into the cohort):
        `visit_codes`, `visit_roles`, `visit_mask` [V, K] (V the patients' input visits, K the most codes of one),
        `visit_neighbours`, `neighbour_mask` [V, N], `visit_patient`, `visit_position` [V], the extra graph rows
        `next_neighbour_codes` / `next_neighbour_mask` [V, E] (the next visit's emerging-neighbour codes, whose
        neighbour embedding this visit's graph layer computes), `query_index` [V, K] (where an emerging-neighbour
        code finds it), the GRU runs with at least one step `run_steps` [R, S] (occurrence of each step, -1 past
        the end), `run_lengths`, `run_start` and `run_starts_emerging` [R], and with `task`, `labels`.
        """
        patients = torch.as_tensor(patients, dtype=torch.long)
        if patients.ndim != 1 or len(patients) == 0:
            raise ValueError(f"a batch needs a non-empty 1-d list of patient indices, got shape {tuple(patients.shape)}")
        visits, visit_patient, _ = ragged_positions(self.visit_offsets, patients)
        positions, occurrence_visit, slot = ragged_positions(self.code_offsets, visits)
        num_visits = len(visits)
        width = int(self.code_offsets.diff()[visits].max()) if num_visits else 0

        def padded(values, rows, columns, size, fill=0):
            out = torch.full((num_visits, size), fill, dtype=values.dtype)
            out[rows, columns] = values
            return out

        codes = padded(self.codes[positions], occurrence_visit, slot, width)
        roles = padded(self.roles[positions], occurrence_visit, slot, width)
        mask = padded(torch.ones(len(positions), dtype=torch.bool), occurrence_visit, slot, width, False)
        n_positions, n_visit, n_slot = ragged_positions(self.neighbour_offsets, visits)
        n_width = int(self.neighbour_offsets.diff()[visits].max()) if num_visits else 0
        neighbours = padded(self.neighbours[n_positions], n_visit, n_slot, n_width)
        neighbour_mask = padded(torch.ones(len(n_positions), dtype=torch.bool), n_visit, n_slot, n_width, False)
        # The next visit's emerging-neighbour codes become extra rows of this visit's graph block.
        emerging = self.roles[positions] == EMERGING_NEIGHBOUR
        e_width = int(self.neighbour_count[visits].max()) if num_visits else 0
        rank = self.neighbour_rank[positions]
        previous = occurrence_visit - 1
        next_codes = torch.zeros(num_visits, e_width, dtype=torch.long)
        next_codes[previous[emerging], rank[emerging]] = self.codes[positions][emerging]
        next_mask = torch.zeros(num_visits, e_width, dtype=torch.bool)
        next_mask[previous[emerging], rank[emerging]] = True
        rows = width + e_width
        query = torch.zeros(len(positions), dtype=torch.long)
        query[emerging] = previous[emerging] * rows + width + rank[emerging]
        # Occurrences are gathered patient by patient in visit order; a run's or an occurrence's local index is
        # its offset within its patient plus that patient's base in this batch.
        flat_slot = occurrence_visit * width + slot  # an occurrence's position in the padded [V, K] layout
        code_counts = self.patient_code_offsets[patients + 1] - self.patient_code_offsets[patients]
        code_base = torch.cumsum(code_counts, 0) - code_counts
        run_counts = self.run_offsets[patients + 1] - self.run_offsets[patients]
        run_base = torch.cumsum(run_counts, 0) - run_counts
        runs, run_patient, _ = ragged_positions(self.run_offsets, patients)
        run_start = flat_slot[self.run_start[runs] - self.patient_code_offsets[patients][run_patient] +
                              code_base[run_patient]]
        occurrence_patient = visit_patient[occurrence_visit]
        local_run = self.occurrence_run[positions] - self.run_offsets[patients][occurrence_patient] + \
            run_base[occurrence_patient]
        step = self.occurrence_step[positions]
        on_gru = step >= 0
        run_lengths = torch.bincount(local_run[on_gru], minlength=len(runs))
        run_steps = torch.full((len(runs), int(run_lengths.max()) if len(runs) else 0), -1, dtype=torch.long)
        run_steps[local_run[on_gru], step[on_gru]] = flat_slot[on_gru]
        # Runs without a GRU step are dropped here, on the CPU, so the model needs no mask (a device sync) for them.
        has_steps = run_lengths > 0
        run_steps, run_lengths, run_start = run_steps[has_steps], run_lengths[has_steps], run_start[has_steps]
        batch = {"visit_codes": codes, "visit_roles": roles, "visit_mask": mask, "visit_neighbours": neighbours,
                 "neighbour_mask": neighbour_mask, "visit_patient": visit_patient,
                 "visit_position": self.visit_position[visits], "next_neighbour_codes": next_codes,
                 "next_neighbour_mask": next_mask, "query_index": padded(query, occurrence_visit, slot, width),
                 "run_steps": run_steps, "run_lengths": run_lengths,
                 "run_start": run_start,
                 "run_starts_emerging": self.run_starts_emerging[runs][has_steps]}
        if task is not None:
            batch["labels"] = self.labels_for(patients, task)
        return batch

    def labels_for(self, patients: torch.Tensor, task: str) -> torch.Tensor:
        if not self.has_targets:
            raise ValueError("this cohort was encoded without targets (for prediction); it has no labels")
        if task == "heart_failure":
            return self.heart_failure[patients].float()
        positions, patient, _ = ragged_positions(self.target_offsets, patients)
        labels = torch.zeros(len(patients), self.num_codes)
        labels[patient, self.targets[positions]] = 1.0
        return labels


__all__ = ["CooccurrenceGraph", "PackedCohort", "split_patients", "build_vocabulary", "encode_patients",
           "prepare_cohort", "diagnosis_roles", "ragged_positions", "is_heart_failure", "PERSISTENT",
           "EMERGING_NEIGHBOUR", "EMERGING_UNRELATED", "ROLE_NAMES"]
