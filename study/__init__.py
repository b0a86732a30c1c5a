"""gradstudy's driver side: a study composed, searched, run on Ray, recorded and reported.

The rooms, in the order a study passes through them:

    cli/        the `gradstudy` command, its exit codes, what the terminal shows, `ui` and `nightly`
    config/     Hydra composition of `conf/` and the typed schema of every key
    search/     search spaces (`search.*`) -> Optuna distributions, samplers and pruners
    storage/    the Optuna storage (journal or PostgreSQL), retries, the study lock, the data directory
    driver/     the run loop: Optuna asks, Ray runs, Optuna is told; the hooks other parts attach by
    cluster/    Ray: placing trials, noticing a lost cluster, and what runs on a worker
    records/    the Optuna vocabulary: trial attributes, the typed trial record, counting rules, claims
    recording/  MLflow attached to a run (a driver hook), the back-fill and the report publishing
    report/     the study report (HTML + figures) and the study's note, read from the Optuna study

Data flows one way: conf/ -> study/ -> Ray -> workers/ -> reporters -> Optuna and tracking/.
"""
