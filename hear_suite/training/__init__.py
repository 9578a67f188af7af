"""Training plumbing shared by the hear_suite trainers (model-agnostic), one concern per module:

- :mod:`~hear_suite.training.args`: the run arguments every trainer shares;
- :mod:`~hear_suite.training.distributed`: torchrun processes, devices, collectives, DDP;
- :mod:`~hear_suite.training.seeding`: seeds and RNG states (bit-identical resume);
- :mod:`~hear_suite.training.sharding`: epoch orders per rank, evaluation shares, batches;
- :mod:`~hear_suite.training.schedules`: warm-up then cosine or 1/sqrt learning rates;
- :mod:`~hear_suite.training.augment`: SpecAugment masks;
- :mod:`~hear_suite.training.steps`: optimizer steps, accumulation, bf16, compile, epochs;
- :mod:`~hear_suite.training.state`: run directories and resumable ``last.pt``;
- :mod:`~hear_suite.training.metrics`: console lines, progress bars, ``metrics.csv``, curves.

The trainers import from these modules by name. Every public name is also importable from
``hear_suite.training`` itself, as when this was one module.
"""
from hear_suite.training.args import (RESUME_MODES, PRECISIONS, add_run_arguments,
                                      run_argument_problems, micro_batch_size, plain_args)
from hear_suite.training.distributed import (DistInfo, select_device, init_distributed,
                                             run_distributed, cleanup_distributed, is_main_process,
                                             barrier, all_reduce_sum, all_gather_objects, unwrap,
                                             wrap_ddp, weights_digest, check_replicas_identical)
from hear_suite.training.metrics import progress, log, MetricsLog, plot_curves
from hear_suite.training.seeding import derive_seed, seed_everything, rng_state, set_rng_state
from hear_suite.training.sharding import shard_indices, split_rank, batches
from hear_suite.training.schedules import DECAYS, warmup_decay_factor, WarmupDecayLR
from hear_suite.training.augment import (add_spec_augment_arguments, spec_augment_problems,
                                         spec_augment, spec_augment_from_args)
from hear_suite.training.steps import (autocast, Stepper, EpochPosition, stop_now, checkpoint_now,
                                       compiled, train_epoch, epoch_means)
from hear_suite.training.state import (STATE_FORMAT, RunDir, save_training_state,
                                       load_training_state, restore_training_state, save_run_state,
                                       resume)

__all__ = [
    "RESUME_MODES", "PRECISIONS", "add_run_arguments", "run_argument_problems",
    "micro_batch_size", "plain_args", "DistInfo", "select_device", "init_distributed",
    "run_distributed", "cleanup_distributed", "is_main_process", "barrier", "all_reduce_sum",
    "all_gather_objects", "unwrap", "wrap_ddp", "weights_digest", "check_replicas_identical",
    "progress", "log", "MetricsLog", "plot_curves", "derive_seed", "seed_everything",
    "rng_state", "set_rng_state", "shard_indices", "split_rank", "batches", "DECAYS",
    "warmup_decay_factor", "WarmupDecayLR", "add_spec_augment_arguments",
    "spec_augment_problems", "spec_augment", "spec_augment_from_args", "autocast", "Stepper",
    "EpochPosition", "stop_now", "checkpoint_now", "compiled", "train_epoch", "epoch_means",
    "STATE_FORMAT", "RunDir", "save_training_state", "load_training_state",
    "restore_training_state", "save_run_state", "resume"]
