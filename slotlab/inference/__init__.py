"""Using trained models: load them safely (a run folder, a .ckpt file, a zoo name, a Hugging Face-style folder),
prepare images as the training images were prepared, run, segment. Not part of the paper."""
