"""Administration: the registry of coaches, athletes and devices, broker credentials, athletes'
data rights (export, erasure, backups) and retention."""
