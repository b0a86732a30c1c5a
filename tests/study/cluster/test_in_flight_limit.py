"""study/cluster/placement.py `Placement.in_flight_limit`: one trial more than the cluster holds waits in Ray's queue
where the limit follows the cluster (so a worker that finishes starts the next at once); a limit the user set is
kept exactly (a cluster larger than it would run the extra one)."""
from __future__ import annotations

from study.cluster.placement import QUEUE_AHEAD, Placement


def test_one_more_waits_in_ray_s_queue_when_the_limit_is_the_cluster_s_size():
    assert QUEUE_AHEAD == 1
    assert Placement(cpu=1, gpu=0, max_concurrent=2, follows_cluster=True).in_flight_limit == 3
    assert Placement(cpu=1, gpu=0, max_concurrent=64, follows_cluster=True).in_flight_limit == 65


def test_a_limit_the_user_set_is_kept_and_an_empty_cluster_gets_nothing_queued():
    assert Placement(cpu=1, gpu=0, max_concurrent=2, follows_cluster=False).in_flight_limit == 2
    assert Placement(cpu=1, gpu=0, max_concurrent=1, follows_cluster=False).in_flight_limit == 1
    assert Placement(cpu=1, gpu=0, max_concurrent=0, follows_cluster=True).in_flight_limit == 0
