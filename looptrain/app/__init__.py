"""The command line application of the built-in classifier and of user tasks: training from a
config (`experiment`), the restored run (`trained`), the evaluation report, prediction and export."""
