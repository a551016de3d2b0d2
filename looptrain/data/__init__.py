"""Data: text files and their encoding (`text`), the embedded corpus (`synthetic`), the encoded
splits (`corpus`) and the tf.data pipelines (`pipeline`)."""
