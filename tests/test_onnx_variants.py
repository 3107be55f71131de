"""The int8 ONNX engine (`OnnxPredictor(predictor, quantize=True)`): its grades and probabilities against the float
network's on every wine of the data set, and the quantized model file itself."""
import numpy as np
import onnx
import onnxruntime
import pytest

from wine_nb.data import load_wine, model_inputs
from wine_nb.onnx import OnnxPredictor, onnx_bytes, quantized_onnx_bytes
from wine_nb.predict import load_model

# Measured on the 5-epoch network of `trained_run`: 99.6% of the wines keep their grade, the largest probability
# change is 0.016 and the mean 0.0006; on the served 100-epoch network 99.5%, 0.037 and 0.0012. The bounds leave room
# for other seeds and torch versions, and stay far below what a broken engine gives (uniform or shuffled outputs).
MIN_AGREEMENT = 0.99  # share of wines whose most likely grade is the float network's
MAX_DIFF = 0.05  # largest change of any probability
MAX_MEAN_DIFF = 0.005  # mean change of a probability


@pytest.fixture(scope="module")
def predictor(trained_run):
    return load_model(trained_run)


@pytest.fixture(scope="module")
def wines(data_dir):
    return load_wine("both", data_dir)


def test_int8_engine_agrees_with_the_float_model(predictor, wines):
    float_proba = predictor.predict_proba(wines)
    int8 = OnnxPredictor(predictor, quantize=True)
    int8_proba = int8.predict_proba(wines)
    assert int8_proba.shape == (6497, 7) and int8.quantized
    np.testing.assert_allclose(int8_proba.sum(1), 1, atol=1e-5)
    diff = np.abs(int8_proba - float_proba)
    agreement = np.mean(int8_proba.argmax(1) == float_proba.argmax(1))
    assert agreement >= MIN_AGREEMENT, agreement
    assert diff.max() < MAX_DIFF and diff.mean() < MAX_MEAN_DIFF, (diff.max(), diff.mean())
    assert diff.max() > 1e-4, "the int8 engine gives the float probabilities: its weights were not quantized"
    predicted = int8.predict(wines.head(20))
    assert predicted["quality"].tolist() == np.asarray(predictor.classes)[int8_proba[:20].argmax(1)].tolist()


def test_int8_engine_one_wine_at_a_time(predictor, wines):
    "Inputs are quantized per call, so a wine alone gets other scales than in a batch: its grade still agrees."
    int8 = OnnxPredictor(predictor, quantize=True)
    inputs = model_inputs(wines.sample(500, random_state=0), predictor.scaler)
    alone = np.concatenate([int8.proba_from_inputs(inputs[i:i + 1]) for i in range(len(inputs))])
    float_proba = predictor.proba_from_inputs(inputs)
    assert np.mean(alone.argmax(1) == float_proba.argmax(1)) >= MIN_AGREEMENT
    assert np.abs(alone - float_proba).max() < MAX_DIFF


def test_int8_model_file(predictor, wines, tmp_path):
    float_bytes = onnx_bytes(predictor.model)
    path = tmp_path/"model.int8.onnx"
    path.write_bytes(quantized_onnx_bytes(float_bytes))
    operators = [node.op_type for node in onnx.load(path).graph.node]
    assert operators.count("MatMulInteger") == 3 and "MatMul" not in operators, operators
    assert path.stat().st_size < 0.55 * len(float_bytes)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = model_inputs(wines.head(OnnxPredictor.chunk), predictor.scaler)  # one network call of the engine
    from_file = session.run(None, {"inputs": inputs})[0]
    np.testing.assert_allclose(from_file, OnnxPredictor(predictor, quantize=True).proba_from_inputs(inputs), atol=1e-6)


def test_unknown_weight_type_is_refused(predictor):
    with pytest.raises(ValueError, match=r"weight_type must be one of .*'QInt8'.*not 'int4'"):
        quantized_onnx_bytes(onnx_bytes(predictor.model), "int4")
