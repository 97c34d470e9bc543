"""ptft_keras.jobs: what the CLI runs. Read files, build, fit, evaluate, write model directories and reports.

The layer above `export`: a job composes `data`, `models`, `training`, `tasks` and `export` exactly as a
notebook would, plus files and reports. Fine-tuning, evaluation and prediction run through one skeleton
(`jobs.finetune`); a task kind (`jobs.kinds`) plugs in what differs.
"""
