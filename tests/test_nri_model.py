"""NRI ELBO pieces, edge metrics and edge bookkeeping against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate

from examples.nri.model import Decoder, EdgeLayout, Encoder
from examples.nri.objective import VARIANCE, edge_metrics, gaussian_nll, gumbel_kl


def test_gaussian_nll_by_hand():
    target = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # [B=1, n=2, T=1, d=2]
    prediction = torch.zeros_like(target)
    # squared errors 1 + 4 = 5, / (2 · 0.5) = 5, / n = 2 -> 2.5
    assert gaussian_nll(prediction, target, variance=0.5).tolist() == [2.5]
    assert gaussian_nll(prediction, target).item() == pytest.approx(5 / (2 * VARIANCE) / 2)
    assert VARIANCE == 5e-5
    with pytest.raises(ValueError, match=r"must both be \[B, n, T, d\]"):
        gaussian_nll(prediction[0], target[0])


def test_gumbel_kl_by_hand_and_by_integration():
    logits = torch.tensor([[0.0, 1.0, -1.0]], dtype=torch.float64)
    expected = (0.0 + (1 + math.exp(-1) - 1) + (-1 + math.e - 1)) / 2
    assert gumbel_kl(logits, n=2).item() == pytest.approx(expected, rel=1e-12)

    def log_density(x, loc):
        return -(x - loc) - math.exp(-(x - loc))

    theta = 0.7
    numeric, _ = integrate.quad(
        lambda x: math.exp(log_density(x, theta)) * (log_density(x, theta) - log_density(x, 0.0)), -20, 40
    )
    assert gumbel_kl(torch.tensor([theta], dtype=torch.float64), n=1).item() == pytest.approx(numeric, rel=1e-8)


def _directed(layout: EdgeLayout, pairs: list[tuple[int, int]]) -> torch.Tensor:
    adj = torch.zeros(layout.n, layout.n)
    for i, j in pairs:
        adj[i, j] = adj[j, i] = 1.0
    return layout.adjacency_to_directed(adj)


def test_edge_metrics_on_hand_made_trees():
    layout = EdgeLayout(4)  # 12 directed edges, trees have 3 edges = 6 directed entries
    truth = _directed(layout, [(0, 1), (1, 2), (2, 3)])
    same = edge_metrics(truth[None], truth[None])
    assert same == {"precision": 1.0, "recall": 1.0, "flipped": False}
    # Shares one of three edges: z has precision = recall = 2/6; 1 − z predicts 6 entries of which
    # 4 are true edges, so precision 4/6 and recall 4/6 win -- the z vs 1 − z rule.
    star = _directed(layout, [(0, 1), (0, 2), (0, 3)])
    flipped = edge_metrics(star[None], truth[None])
    assert flipped["flipped"]
    assert flipped["precision"] == pytest.approx(4 / 6) and flipped["recall"] == pytest.approx(4 / 6)
    # Averaged over instances: (1 + 2/6) / 2 for z beats (0 + 4/6) / 2 for 1 − z.
    both = edge_metrics(torch.stack([truth, star]), torch.stack([truth, truth]))
    assert not both["flipped"] and both["precision"] == pytest.approx((1 + 2 / 6) / 2)
    assert both["recall"] == pytest.approx((1 + 2 / 6) / 2)


def test_edge_metrics_tie_keeps_one_minus_z_and_rejects_bad_shapes():
    # Two 2-vertex "trees": z = truth gives precision 1; 1 − z predicts nothing (precision 0);
    # with one instance each way the means tie at 1/2.
    sample = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    target = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    tie = edge_metrics(sample, target)
    assert tie["flipped"] and tie["precision"] == 0.5 and tie["recall"] == 0.5
    with pytest.raises(ValueError, match=r"must both be \[B, edges\]"):
        edge_metrics(sample, target[0])


def test_edge_layout_maps():
    layout = EdgeLayout(3)  # directed (0,1) (0,2) (1,0) (1,2) (2,0) (2,1); pairs (0,1) (0,2) (1,2)
    assert layout.receivers.tolist() == [0, 0, 1, 1, 2, 2] and layout.senders.tolist() == [1, 2, 0, 2, 0, 1]
    assert layout.pair_of_edge.tolist() == [0, 1, 0, 2, 1, 2]
    logits = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert layout.symmetrise(logits).tolist() == [2.0, 3.5, 5.0]
    assert layout.to_directed(torch.tensor([1.0, 2.0, 3.0])).tolist() == [1.0, 2.0, 1.0, 3.0, 2.0, 3.0]


def test_decoder_rollout_and_teacher_forcing():
    torch.manual_seed(0)
    layout = EdgeLayout(3)
    decoder = Decoder(layout, n_dims=2, hidden=8).double()
    x = torch.randn(2, 3, 5, 2, dtype=torch.float64)  # [B, n, T, d]
    weights = torch.rand(2, 6, 2, dtype=torch.float64)
    frames = x.transpose(1, 2)
    w = weights.unsqueeze(1)
    forced = decoder(x, weights, prediction_steps=1)
    assert forced.shape == (2, 3, 4, 2)
    torch.testing.assert_close(forced.transpose(1, 2), decoder.step(frames[:, :4], w), rtol=0, atol=0)
    rolled = decoder(x, weights, prediction_steps=4)
    current, manual = frames[:, :1], []
    for _ in range(4):
        current = decoder.step(current, w)
        manual.append(current)
    torch.testing.assert_close(rolled.transpose(1, 2), torch.cat(manual, dim=1), rtol=0, atol=0)
    # Anchors every 2 frames: frames 1, 2 from frame 0; frames 3, 4 from the true frame 2.
    two = decoder(x, weights, prediction_steps=2).transpose(1, 2)
    torch.testing.assert_close(two[:, 2:3], decoder.step(frames[:, 2:3], w), rtol=0, atol=0)
    with pytest.raises(ValueError, match="prediction_steps must be in"):
        decoder(x, weights, prediction_steps=6)


def test_decoder_messages_follow_the_edge_weights():
    # With weight 1 on "no edge" everywhere, the edge-type-1 MLP cannot influence the output.
    torch.manual_seed(0)
    layout = EdgeLayout(4)
    decoder = Decoder(layout, hidden=8)
    x = torch.randn(1, 4, 3, 2)
    no_edges = torch.stack([torch.ones(1, 12), torch.zeros(1, 12)], dim=-1)
    before = decoder(x, no_edges, 1)
    with torch.no_grad():
        decoder.msg_fc2[1].weight.add_(1.0)
    torch.testing.assert_close(decoder(x, no_edges, 1), before, rtol=0, atol=0)


def test_decoder_skip_first_sends_no_messages_for_type_zero():
    torch.manual_seed(0)
    layout = EdgeLayout(4)
    decoder = Decoder(layout, hidden=8, skip_first=True)
    assert len(decoder.msg_fc1) == len(decoder.msg_fc2) == 1  # only type 1 ("edge") has a network
    x = torch.randn(2, 4, 3, 2)
    z = (torch.rand(2, 12) < 0.5).float()
    with_type_zero = decoder(x, torch.stack([1.0 - z, z], dim=-1), 1)
    # Whatever weight type 0 gets, the output is the same: it sends nothing.
    torch.testing.assert_close(decoder(x, torch.stack([torch.full_like(z, 7.0), z], dim=-1), 1), with_type_zero)
    # With no edges at all, no messages arrive: the output equals that of an all-zero message sum.
    nothing = decoder(x, torch.zeros(2, 12, 2), 1)
    assert not torch.allclose(nothing, with_type_zero)
    frames = x.transpose(1, 2)[:, :1]
    h = torch.relu(decoder.out_fc1(torch.cat([frames, torch.zeros(*frames.shape[:-1], 8)], dim=-1)))
    expected = frames + decoder.out_fc3(torch.relu(decoder.out_fc2(h)))
    torch.testing.assert_close(nothing[:, :, :1], expected.transpose(1, 2))


def test_encoder_output_shape_and_edge_to_node():
    torch.manual_seed(0)
    layout = EdgeLayout(4)
    encoder = Encoder(layout, n_in=6, hidden=8)
    assert encoder(torch.randn(5, 4, 3, 2)).shape == (5, 12)
    edge_features = torch.arange(12.0).reshape(1, 12, 1)
    # Node 0 receives on directed edges 0..2 (values 0, 1, 2): (0 + 1 + 2) / n = 0.75.
    assert encoder.edge_to_node(edge_features)[0, :, 0].tolist() == [0.75, 3.0, 5.25, 7.5]


def test_receiver_sums_equal_the_one_hot_matmul():
    layout = EdgeLayout(5)
    x = torch.randn(3, 2, 20, 4, dtype=torch.float64)
    onehot = torch.nn.functional.one_hot(layout.receivers, 5).to(torch.float64)  # [edges, n]
    torch.testing.assert_close(layout.sum_at_receivers(x), onehot.t().matmul(x), rtol=1e-12, atol=1e-12)


def test_decoder_skips_only_anchors_whose_predictions_are_dropped():
    # NRI rolls out from every p-th frame and cuts the result to T - 1 frames; anchors at or after
    # frame T - 1 only predict frames past the end. Skipping them leaves the output unchanged.
    torch.manual_seed(0)
    layout = EdgeLayout(3)
    decoder = Decoder(layout, n_dims=2, hidden=8).double()
    x = torch.randn(2, 3, 10, 2, dtype=torch.float64)
    w = torch.rand(2, 6, 2, dtype=torch.float64)
    frames = x.transpose(1, 2)
    for p in (1, 2, 3, 4, 9, 10):
        current, predictions = frames[:, ::p], []  # every anchor, as the original code
        for _ in range(p):
            current = decoder.step(current, w.unsqueeze(1))
            predictions.append(current)
        full = torch.stack(predictions, dim=2).flatten(1, 2)[:, :9].transpose(1, 2)
        torch.testing.assert_close(decoder(x, w, p), full, rtol=1e-12, atol=1e-12, msg=f"p = {p}")
