"""An echo state network's readout, fit in closed form, and the Mackey-Glass forecasting tests and baseline.

    ridge_readout.py  `RidgeFit`: ridge regression accumulated batch by batch; `design`: its rows
    esn_fit.py        how an ESN is trained: reservoir states collected, the readout solved, λ chosen
    free_run.py       Jaeger (2001)'s free-running test of a one-step predictor (`task.free_run`)
    ar_baseline.py    the linear AR(k) baseline on Mackey-Glass (`task.ar_order`)

The AR baseline is not exported here (its function has its module's name, and its `free_run_nrmse` is the
baseline's own): import it from workers.forecast.ar_baseline.
"""
from workers.forecast.esn_fit import fit_readout, washout_of
from workers.forecast.free_run import free_run_nrmse, teacher_length
from workers.forecast.ridge_readout import RidgeFit, design

__all__ = ["fit_readout", "washout_of", "free_run_nrmse", "teacher_length", "RidgeFit", "design"]
