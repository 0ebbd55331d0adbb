"""The three-node local cluster's configuration, rendered without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import DevstackError
from devstack.cluster import ClusterSpec, render_node_properties


def properties(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if not line.startswith("#"))
    return {key: value for key, _, value in pairs}


def test_three_combined_nodes_form_one_quorum_with_production_durability() -> None:
    spec = ClusterSpec()
    rendered = [properties(render_node_properties(spec, n, Path("/d"))) for n in spec.nodes]

    assert spec.bootstrap == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert {r["controller.quorum.voters"] for r in rendered} == {
        "1@127.0.0.1:19095,2@127.0.0.1:19096,3@127.0.0.1:19097"
    }
    assert [r["node.id"] for r in rendered] == ["1", "2", "3"]
    assert rendered[1]["listeners"] == "PLAINTEXT://127.0.0.1:19093,CONTROLLER://127.0.0.1:19096"
    assert rendered[1]["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19093"
    for node in rendered:
        assert node["process.roles"] == "broker,controller"
        assert node["default.replication.factor"] == "3"
        assert node["min.insync.replicas"] == "2"
        assert node["offsets.topic.replication.factor"] == "3"
        assert node["unclean.leader.election.enable"] == "false"
        assert node["auto.create.topics.enable"] == "false"


def test_ports_must_pair_up_and_differ() -> None:
    with pytest.raises(DevstackError, match="one broker port and one controller port"):
        ClusterSpec(broker_ports=(1, 2, 3), controller_ports=(4, 5))
    with pytest.raises(DevstackError, match="must all differ"):
        ClusterSpec(broker_ports=(1, 2, 3), controller_ports=(3, 4, 5))


def test_an_unknown_node_is_refused_with_the_valid_range() -> None:
    with pytest.raises(DevstackError, match="nodes 1 to 3"):
        ClusterSpec().node(4)
