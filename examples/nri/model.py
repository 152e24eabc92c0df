"""The NRI model (Kipf et al. 2018) with a spanning-tree latent graph: encoder, decoder, edge layout.

Directed edges are the off-diagonal entries of an ``n × n`` matrix in row-major order
(``(receiver i, sender j)``, 90 of them for n = 10); a tree is chosen over the 45 unordered pairs
of ``torch.triu_indices(n, n, 1)``, the layout of the ``spanning_tree`` solver. :class:`EdgeLayout`
converts between the two. The estimator that samples the tree lives in ``train.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EdgeLayout", "Encoder", "Decoder"]


class EdgeLayout(nn.Module):
    """Index bookkeeping between 90 directed edges and 45 unordered pairs (buffers follow ``.to``)."""

    receivers: Tensor
    senders: Tensor
    pair_of_edge: Tensor

    def __init__(self, n: int):
        super().__init__()
        self.n = n
        off_diagonal = ~torch.eye(n, dtype=torch.bool)
        receivers, senders = off_diagonal.nonzero(as_tuple=True)
        pair_index = torch.full((n, n), -1, dtype=torch.long)
        rows, cols = torch.triu_indices(n, n, 1)
        pair_index[rows, cols] = torch.arange(rows.numel())
        pair_index[cols, rows] = torch.arange(rows.numel())
        self.register_buffer("receivers", receivers, persistent=False)
        self.register_buffer("senders", senders, persistent=False)
        self.register_buffer("pair_of_edge", pair_index[receivers, senders], persistent=False)

    @property
    def num_edges(self) -> int:
        return self.receivers.numel()

    def sum_at_receivers(self, x: Tensor) -> Tensor:
        """Edge values ``[*, 90, F]`` -> their sums at each receiver ``[*, n, F]``.

        Row-major order puts each receiver's n − 1 incoming edges next to each other, so the sum is
        a reshape and a reduction, the same sums as a matmul with the one-hot ``[n, 90]`` receiver
        matrix without its mostly-zero products (a large share of the decoder's time on a CPU).
        """
        return x.unflatten(-2, (self.n, self.n - 1)).sum(-2)

    def symmetrise(self, logits: Tensor) -> Tensor:
        """Directed logits ``[*, 90]`` -> pair logits ``[*, 45]``: θ_ij = (l_ij + l_ji) / 2."""
        pairs = self.pair_of_edge.numel() // 2
        total = logits.new_zeros(*logits.shape[:-1], pairs).index_add_(-1, self.pair_of_edge, logits)
        return total / 2

    def to_directed(self, pairs: Tensor) -> Tensor:
        """Pair values ``[*, 45]`` -> symmetric directed values ``[*, 90]``."""
        return pairs[..., self.pair_of_edge]

    def adjacency_to_directed(self, adjacency: Tensor) -> Tensor:
        """``[*, n, n]`` adjacency -> ``[*, 90]`` directed edge indicators."""
        return adjacency[..., self.receivers, self.senders]


class MLP(nn.Module):
    """Linear-ELU-Linear-ELU-BatchNorm over the last dim (BatchNorm over all leading positions)."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        self.fc1 = nn.Linear(n_in, n_hidden)
        self.fc2 = nn.Linear(n_hidden, n_out)
        self.bn = nn.BatchNorm1d(n_out)
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_normal_(fc.weight)
            nn.init.constant_(fc.bias, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.elu(self.fc2(F.elu(self.fc1(x))))
        return self.bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class Encoder(nn.Module):
    """Factor-graph MLP encoder: trajectories ``[B, n, T, 2]`` -> one logit per directed edge ``[B, 90]``.

    node MLP -> node→edge (concat) -> edge MLP (skip) -> edge→node (sum / n) -> node MLP ->
    node→edge concat with the skip -> edge MLP -> Linear(hidden → 1).
    """

    def __init__(self, layout: EdgeLayout, n_in: int, hidden: int = 256):
        super().__init__()
        self.layout = layout
        self.mlp1 = MLP(n_in, hidden, hidden)
        self.mlp2 = MLP(2 * hidden, hidden, hidden)
        self.mlp3 = MLP(hidden, hidden, hidden)
        self.mlp4 = MLP(3 * hidden, hidden, hidden)
        self.fc_out = nn.Linear(hidden, 1)
        nn.init.xavier_normal_(self.fc_out.weight)
        nn.init.constant_(self.fc_out.bias, 0.1)

    def node_to_edge(self, x: Tensor) -> Tensor:
        return torch.cat([x[:, self.layout.senders], x[:, self.layout.receivers]], dim=-1)

    def edge_to_node(self, x: Tensor) -> Tensor:
        return self.layout.sum_at_receivers(x) / self.layout.n

    def forward(self, trajectories: Tensor) -> Tensor:
        x = self.mlp1(trajectories.flatten(2))
        x = self.mlp2(self.node_to_edge(x))
        skip = x
        x = self.mlp3(self.edge_to_node(x))
        x = self.mlp4(torch.cat([self.node_to_edge(x), skip], dim=-1))
        return self.fc_out(x).squeeze(-1)


class Decoder(nn.Module):
    """MLP decoder with two edge types (0: no edge, weight 1 − z; 1: edge, weight z).

    One step: messages ``ReLU(Linear(ReLU(Linear([x_send, x_recv]))))`` per edge type, weighted by
    the edge type and summed at receivers; the output MLP (2 + hidden → hidden → hidden → 2)
    predicts ``x_{t+1} − x_t``. ``skip_first`` (NRI's option of that name) gives type 0 no
    message network, so that only the tree's edges carry messages.
    """

    def __init__(
        self, layout: EdgeLayout, n_dims: int = 2, hidden: int = 256, edge_types: int = 2, skip_first: bool = False
    ):
        super().__init__()
        self.layout = layout
        # Edge types that send messages; with skip_first, type 0 ("no edge") sends none.
        self.message_types = list(range(1 if skip_first else 0, edge_types))
        self.msg_fc1 = nn.ModuleList(nn.Linear(2 * n_dims, hidden) for _ in self.message_types)
        self.msg_fc2 = nn.ModuleList(nn.Linear(hidden, hidden) for _ in self.message_types)
        self.out_fc1 = nn.Linear(n_dims + hidden, hidden)
        self.out_fc2 = nn.Linear(hidden, hidden)
        self.out_fc3 = nn.Linear(hidden, n_dims)

    def step(self, x: Tensor, edge_weights: Tensor) -> Tensor:
        """``x [B, S, n, d]``, ``edge_weights [B, 1, 90, types]`` -> next positions ``[B, S, n, d]``."""
        pre_msg = torch.cat([x[..., self.layout.senders, :], x[..., self.layout.receivers, :]], dim=-1)
        messages = 0
        for k, fc1, fc2 in zip(self.message_types, self.msg_fc1, self.msg_fc2):
            messages = messages + F.relu(fc2(F.relu(fc1(pre_msg)))) * edge_weights[..., k : k + 1]
        incoming = self.layout.sum_at_receivers(messages)
        h = F.relu(self.out_fc1(torch.cat([x, incoming], dim=-1)))
        h = F.relu(self.out_fc2(h))
        return x + self.out_fc3(h)

    def forward(self, trajectories: Tensor, edge_weights: Tensor, prediction_steps: int) -> Tensor:
        """Predict frames 1..T−1 of ``trajectories [B, n, T, d]`` -> ``[B, n, T−1, d]``.

        Every ``prediction_steps``-th frame is given (teacher forcing); in between the decoder feeds
        back its own predictions. ``prediction_steps = T − 1`` rolls out from frame 0 alone;
        ``prediction_steps = 1`` predicts each frame from the true previous one.
        """
        timesteps = trajectories.shape[2]
        if not 1 <= prediction_steps <= timesteps:
            raise ValueError(f"Decoder: prediction_steps must be in [1, {timesteps}], got {prediction_steps}")
        frames = trajectories.transpose(1, 2)  # [B, T, n, d]
        weights = edge_weights.unsqueeze(1)
        # Anchors at frames 0, p, 2p, ... before the last frame: an anchor at or after frame T − 1
        # would only predict frames past the end (NRI computes and drops them; at T = 10 and
        # p = 9 that is half of the training roll-out).
        current = frames[:, : timesteps - 1 : prediction_steps]
        predictions = []
        for _ in range(prediction_steps):
            current = self.step(current, weights)
            predictions.append(current)
        # Interleave: prediction k of anchor a is frame a * prediction_steps + k + 1.
        out = torch.stack(predictions, dim=2).flatten(1, 2)[:, : timesteps - 1]
        return out.transpose(1, 2)
