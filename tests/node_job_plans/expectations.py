"""What tests expect of a job worker (not a plan module: plans must stay self-contained)."""

# The only environment variables a job worker may see (node.jobs.sandbox.clean_environment),
# and PWD, which bubblewrap and the shell set to the work folder.
WORKER_ENV = frozenset(
    {
        "PATH",
        "LANG",
        "LC_ALL",
        "TZ",
        "HOME",
        "TMPDIR",
        "MPLCONFIGDIR",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONNOUSERSITE",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "CUDA_VISIBLE_DEVICES",
        "LD_LIBRARY_PATH",  # GPU workers only: the node's absolute library folders
        "PYTHONHASHSEED",
        "PWD",
    }
)
