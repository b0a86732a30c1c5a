"""The gradient measurements a probe takes and the health verdict read from them.

    log_profile.py  the exact log-space profile log10 ‖∂L_T/∂h_t‖, every layer and t = 1..T, at any T
    probes.py       the figures read from the profile (ratios, horizon, decay rate), group norms, λ1, update
                    ratios
    health.py       the verdict rule: a probe's and a trial's (healthy, vanishing, exploding, diverged)
    health_stop.py  `HealthStop`, the gradient-health pruning rule, a Reporter

Only the verdict and the pruning rule are exported here: they load no PyTorch, and the driver
(study/cluster/trial_task.py) and tracking/ import them. `log_profile` and the probe figures load PyTorch:
import them from workers.gradients.log_profile and workers.gradients.probes.
"""
from workers.gradients.health import DECADES, SEVERITY, probe_verdict, trial_verdict
from workers.gradients.health_stop import UNHEALTHY, HealthStop

__all__ = ["DECADES", "SEVERITY", "probe_verdict", "trial_verdict", "UNHEALTHY", "HealthStop"]
