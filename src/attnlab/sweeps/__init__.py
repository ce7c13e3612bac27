"""attnlab.sweeps: ablation studies (``definitions``, ``spec``), their runs as jobs here or on
SLURM (``jobs``, ``launch``; docs/cluster.md), and their reports (``report``). It sits above
train/, beside analysis/, and checks every run's config with the trainer's own checks."""
