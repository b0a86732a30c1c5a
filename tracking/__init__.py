"""What a trial and a study leave in MLflow, and how it looks there (knows nothing of Ray or the driver).

    runs/     MLflow runs: where they go (connection), their names, the study's and each trial's run
    ui/       how the runs look in the MLflow UI: run names and colours, the seeded view, links
    figures/  per-trial figures: gradient profiles (SVG, PNG), colours of health verdicts
    values.py reading and showing the loose values of summaries, written once
"""
