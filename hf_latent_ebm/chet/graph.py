"""Chet's global disease graph (code co-occurrence with the paper's pruning) and the ragged-array helpers it and the
cohort code share: everything sparse, whole-array operations, no loop over patients or visits."""

from dataclasses import dataclass

import torch

# The paper's pruning rule: drop edge i->j when its row-normalised weight is below 0.01 and row i counts over 100.
PRUNE_WEIGHT, PRUNE_ROW_TOTAL = 0.01, 100


def ragged_positions(offsets: torch.Tensor, ids: torch.Tensor):
    """The flat positions of segments `ids` of a ragged array with `offsets`, their segment (0..len(ids)-1) and
    their place within it, without a Python loop over segments."""
    starts = offsets[ids]
    lengths = offsets[ids + 1] - starts
    segment = torch.repeat_interleave(torch.arange(len(ids)), lengths)
    first = torch.cumsum(lengths, 0) - lengths
    within = torch.arange(int(lengths.sum())) - first[segment]
    return starts[segment] + within, segment, within


def _lengths_to_offsets(lengths: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths.long(), 0)])


# ---- the graph -------------------------------------------------------------------------------------------------
@dataclass
class CooccurrenceGraph:
    """
    The global disease graph: code i -> j with weight A_ij, the row-normalised count of visits where both occur
    after the paper's pruning (an edge whose row-normalised weight is < 0.01 in a row counting > 100 is dropped).
    Stored as sorted edge keys i * num_codes + j and their weights.
    """

    num_codes: int
    edge_keys: torch.Tensor  # long, sorted
    edge_weights: torch.Tensor  # float

    @property
    def num_edges(self) -> int:
        return len(self.edge_keys)

    @classmethod
    def fit(cls, code_offsets: torch.Tensor, codes: torch.Tensor, num_codes: int) -> "CooccurrenceGraph":
        """Count the code pairs of every visit (visit v holds codes[code_offsets[v]:code_offsets[v+1]], distinct ids)
        in one pass over all pairs, then prune and normalise."""
        lengths = code_offsets.diff()
        # Each code occurrence pairs with every occurrence of its visit: occurrence o of a visit of n codes
        # repeats n times.
        occurrence_visit = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
        partner, source, _ = ragged_positions(code_offsets, occurrence_visit)
        first = codes[source]
        second = codes[partner]
        keep = first != second
        keys, counts = torch.unique(first[keep] * num_codes + second[keep], return_counts=True)
        rows = keys // num_codes
        row_totals = torch.zeros(num_codes, dtype=torch.long).index_add_(0, rows, counts)
        weights = counts / row_totals[rows]
        pruned = (weights < PRUNE_WEIGHT) & (row_totals[rows] > PRUNE_ROW_TOTAL)
        keys, counts, rows = keys[~pruned], counts[~pruned], rows[~pruned]
        kept_totals = torch.zeros(num_codes, dtype=torch.long).index_add_(0, rows, counts)
        return cls(num_codes, keys, (counts / kept_totals[rows]).float())

    def row_offsets(self) -> torch.Tensor:
        return torch.searchsorted(self.edge_keys, torch.arange(self.num_codes + 1) * self.num_codes)

    def dense(self, device=None) -> torch.Tensor:
        """A as a [num_codes, num_codes] tensor (for the model's gathers; 95 MB at MIMIC-III's 4,880 codes)."""
        adjacency = torch.zeros(self.num_codes * self.num_codes, device=device)
        adjacency[self.edge_keys.to(device)] = self.edge_weights.to(device)
        return adjacency.view(self.num_codes, self.num_codes)

    def neighbours(self, code_offsets: torch.Tensor, codes: torch.Tensor, chunk_visits: int = 20_000):
        """Each visit's neighbours N_t = (union of its codes' graph neighbours) minus its codes, sorted, as ragged
        (offsets, ids); worked in chunks of visits so the expanded (visit, neighbour) pairs stay bounded."""
        graph_offsets = self.row_offsets()
        neighbour_ids = self.edge_keys % self.num_codes
        all_lengths, all_ids = [], []
        num_visits = len(code_offsets) - 1
        for start in range(0, num_visits, chunk_visits):  # chunks of visits, each chunk fully vectorised
            visits = torch.arange(start, min(start + chunk_visits, num_visits))
            positions, local_visit, _ = ragged_positions(code_offsets, visits)
            edge_positions, occurrence, _ = ragged_positions(graph_offsets, codes[positions])
            pair_keys = torch.unique(local_visit[occurrence] * self.num_codes + neighbour_ids[edge_positions])
            own_keys = local_visit * self.num_codes + codes[positions]
            pair_keys = pair_keys[~torch.isin(pair_keys, own_keys)]
            all_lengths.append(torch.bincount(pair_keys // self.num_codes, minlength=len(visits)))
            all_ids.append(pair_keys % self.num_codes)
        if not all_ids:
            return torch.zeros(1, dtype=torch.long), torch.zeros(0, dtype=torch.long)
        return _lengths_to_offsets(torch.cat(all_lengths)), torch.cat(all_ids)


__all__ = ["CooccurrenceGraph", "ragged_positions", "PRUNE_WEIGHT", "PRUNE_ROW_TOTAL"]
