"""Ray Train loops (``train_loop_per_worker``) and the functions that build and run trainers."""
