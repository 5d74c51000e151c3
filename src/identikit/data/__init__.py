"""Datasets: the IDX reader and the named datasets (MNIST, Fashion-MNIST, IDX folders)."""
