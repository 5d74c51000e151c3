"""Sweeps on a cluster: the runs of one sweep split into shards that Ray tasks search.

:mod:`.shards` plans the shards and keeps each finished one in the sweep's folder;
:mod:`.model_source` is the model as it travels to the workers; :mod:`.tasks` is what a worker
does with one shard; :mod:`.ray_sweep` drives a sweep on a Ray cluster.
"""
