"""medcap.config: TOML and MEDCAP_* environment reach every model spec, fine-tune runs included."""

from __future__ import annotations

from pathlib import Path

from medcap.config import load_settings
from medcap.models import Manifest, write_manifest


def test_toml_then_environment_precedence(tmp_path):
    toml = tmp_path / "medcap.toml"
    toml.write_text('models = ["blip", "qwen2-vl"]\ndevice = "cpu"\ndtype = "bfloat16"\n'
                    'data_split = "validation"\n[prompts]\nqwen2-vl = "Name the modality."\n')
    settings = load_settings(env={}, config_file=toml)
    assert settings.model_names == ["blip", "qwen2-vl"]
    assert (settings.device, settings.dtype, settings.data_split) == ("cpu", "bfloat16", "validation")
    overridden = load_settings(env={"MEDCAP_DTYPE": "float32", "MEDCAP_MODELS": "blip"},
                               config_file=toml)
    assert overridden.dtype == "float32" and overridden.model_names == ["blip"]
    assert overridden.device == "cpu"  # not overridden: the file's value stays


def test_device_and_dtype_reach_configured_models_and_runs(tmp_path, tiny_blip_dir):
    run = tmp_path / "runs" / "blip-roco"
    run.mkdir(parents=True)
    write_manifest(run, Manifest(family="blip", base_model=str(tiny_blip_dir), weights="full",
                                 path=str(tiny_blip_dir), name="blip-roco"))
    settings = load_settings(env={"MEDCAP_MODELS": "blip", "MEDCAP_DTYPE": "float32",
                                  "MEDCAP_DEVICE": "cpu", "MEDCAP_RUNS_DIR": str(tmp_path / "runs"),
                                  "MEDCAP_SKIP_MEMORY_CHECK": "1"},
                             config_file=tmp_path / "absent.toml")
    specs, problems = settings.model_specs()
    assert not problems
    by_name = {s.name: s for s in specs}
    assert set(by_name) == {"blip", "blip-roco"}
    for spec in by_name.values():  # a fine-tune run follows the same settings as a configured model
        assert (spec.dtype, spec.device, spec.check_memory) == ("float32", "cpu", False)


def test_mistyped_dtype_is_reported_per_model_not_raised(tmp_path):
    settings = load_settings(env={"MEDCAP_MODELS": "blip,qwen2-vl", "MEDCAP_DTYPE": "fp32"},
                             config_file=Path(tmp_path / "absent.toml"))
    specs, problems = settings.model_specs()
    assert specs == []
    assert set(problems) == {"blip", "qwen2-vl"}
    assert "dtype 'fp32' is not one of auto, float32, bfloat16, float16" in problems["blip"]


def test_blip2_lora_without_adapter_is_unavailable_from_the_start(tmp_path, tiny_blip_dir):
    """The app lists it as unavailable on its first page, before anyone clicks Caption."""
    settings = load_settings(env={"MEDCAP_MODELS": f"blip={tiny_blip_dir},blip2-lora"},
                             config_file=tmp_path / "absent.toml")
    specs, problems = settings.model_specs()
    assert [s.name for s in specs] == ["blip"]
    assert "'blip2-lora' needs a LoRA adapter" in problems["blip2-lora"]
    assert "MEDCAP_BLIP2_ADAPTER" in problems["blip2-lora"]


def test_max_pixels_reaches_models_without_their_own_budget(tmp_path, tiny_qwen2_vl_dir):
    """MEDCAP_MAX_PIXELS replaces the per-device default; a fine-tune's own budget stays."""
    run = tmp_path / "runs" / "qwen-roco"
    run.mkdir(parents=True)
    write_manifest(run, Manifest(family="qwen2-vl", base_model=str(tiny_qwen2_vl_dir),
                                 weights="full", path=str(tiny_qwen2_vl_dir), name="qwen-roco",
                                 max_pixels=28 * 28 * 64))
    env = {"MEDCAP_MODELS": "qwen2-vl", "MEDCAP_RUNS_DIR": str(tmp_path / "runs"),
           "MEDCAP_SKIP_MEMORY_CHECK": "1"}
    absent = tmp_path / "absent.toml"
    by_name = {s.name: s for s in load_settings(env=env, config_file=absent).model_specs()[0]}
    assert (by_name["qwen2-vl"].max_pixels, by_name["qwen-roco"].max_pixels) == (None, 50176)
    specs, problems = load_settings(env={**env, "MEDCAP_MAX_PIXELS": " 200704 "},
                                    config_file=absent).model_specs()
    assert not problems
    assert {s.name: s.max_pixels for s in specs} == {"qwen2-vl": 200704, "qwen-roco": 50176}
    for bad in ("lots", "100", "999999999"):
        specs, problems = load_settings(env={**env, "MEDCAP_MAX_PIXELS": bad},
                                        config_file=absent).model_specs()
        assert specs == [] and "max_pixels must be a whole number of pixels" in problems["qwen2-vl"]
