"""ptft_keras.models: BERT/DistilBERT backbones and Hugging Face checkpoint I/O.

* `backbone`: `Backbone` (from_pretrained / from_size / from_hf_config / save_pretrained),
  `BertBackbone`, `DistilBertBackbone`
* `hf_checkpoint`: read/write HF checkpoint directories (`read_hf_checkpoint`)
* `hf_config`: HF config.json <-> backbone arguments
* `hf_convert`: the HF tensor <-> Keras variable table, both directions
* `locate`: what a from_pretrained argument names (directory, .keras, Hub id, keras-hub preset)
* `activations`, `sizes`, `default_checkpoint`: HF activation names, named sizes, the offline checkpoint
"""
