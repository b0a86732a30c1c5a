"""Ray: where trials run.

    placement.py   a local Ray or an existing cluster; trials placed as remote tasks with their resources
    watch.py       noticing that the cluster is gone mid-study, before Ray ends the driver
    trial_task.py  what runs on a worker for one trial: the trial engine with the study's reporters
    optuna_feed.py the reporter that feeds Optuna from inside a running trial (intermediate values, pruning)

placement.py loads Ray: import it as a module (`from study.cluster import placement`).
"""
from study.cluster.optuna_feed import OptunaFeed
from study.cluster.trial_task import TrialJob, execute
from study.cluster.watch import ClusterLost, ClusterWatch, gcs_address

__all__ = ["OptunaFeed", "TrialJob", "execute", "ClusterLost", "ClusterWatch", "gcs_address"]
