"""ptft_keras.export: a fine-tuned task model -> a TF Serving SavedModel that takes raw strings.

Modules, one job each:
    serving             `export_model(...)`: build the signatures and write a new version
    job                 `ptft export`: `ExportConfig`, `run`, `load_finetuned_dir`
    core_tokenizer      the WordPiece tokenizer in core TF ops, used inside the exported graph
    text_normalization  optional normalisation shared by training, evaluation and export
    predictions         logits -> named outputs per task
    token_predictions   token classification: words with offsets, a tag per word, entity spans
    word_offsets        BERT's words as character offsets into the raw text
    entities            entity chunks from tags (conlleval's rules), in the graph
    layout              `<base>/<version>/` directories, written atomically
    warmup              `assets.extra/tf_serving_warmup_requests`
    model_card          `README.md` + `model_card.json` of an export
    portability         check that a SavedModel uses no custom ops
"""
