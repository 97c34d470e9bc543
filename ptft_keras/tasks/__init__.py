"""ptft_keras.tasks: fine-tuning task models over any BERT/DistilBERT backbone.

Each task model is a `keras.Model` subclass whose forward pass reads top to bottom in its own
file; the shared pieces (calling a backbone, pooling, the dense head) are in `heads.py`, the shared
Keras plumbing (compile defaults, config, loading) in `task.py`.
"""
from ptft_keras.tasks.heads import IGNORE_INDEX, ClassificationHead
from ptft_keras.data.qa_features import QAFeatures, QAFeaturizer, best_answers
from ptft_keras.tasks.question_answerer import QuestionAnswerer
from ptft_keras.tasks.sequence_classifier import SequenceClassifier
from ptft_keras.tasks.task import TaskModel
from ptft_keras.tasks.token_classifier import TokenClassifier

__all__ = [
    "IGNORE_INDEX",
    "ClassificationHead",
    "QAFeatures",
    "QAFeaturizer",
    "QuestionAnswerer",
    "SequenceClassifier",
    "TaskModel",
    "TokenClassifier",
    "best_answers",
]
