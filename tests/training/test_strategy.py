import json

import pytest
import tensorflow as tf

from ptft_keras.errors import ConfigError
from ptft_keras.training import strategy as st


def test_default_and_one_device():
    assert st.resolve("default") is tf.distribute.get_strategy()
    one = st.resolve("one_device")
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    assert one.num_replicas_in_sync == 1


def test_mirrored_over_two_logical_cpus(two_cpus):
    mirrored = st.resolve("mirrored", devices=two_cpus)
    assert mirrored.num_replicas_in_sync == 2


def test_unknown_name():
    with pytest.raises(ConfigError, match="unknown strategy 'horovod'"):
        st.resolve("horovod")


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        st.resolve("multi_worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}))
    with pytest.raises(ConfigError, match="index 3"):
        st.resolve("multi_worker")


def test_tpu_resolver_configuration_without_a_tpu():
    with pytest.raises(ConfigError, match="--tpu"):
        st.tpu_cluster_resolver(None)
    resolver = st.tpu_cluster_resolver("grpc://10.1.2.3:8470")
    assert resolver.master() == "grpc://10.1.2.3:8470"
    assert not st.needs_static_shapes(tf.distribute.get_strategy())
