"""The config schema: every table derives from the key declarations, and the move to it changed no config.

- Every packaged preset (and each task's bare defaults) resolves to exactly the values it resolved to before the
  schema (``fixtures/resolved_presets.json``, captured from the code before the change: values, types, keys).
- ``docs/configs.md``'s key table is the generated one.
- The derived tables (defaults, types, rules, resume-safe keys, builder arguments) follow the declarations, and a
  task registered from outside slotlab (here: this file) gets all of them from its own schema.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from slotlab.config import available_configs, defaults_for, load_config, task_schema, task_schemas, validate
from slotlab.config_schema import (
    BEGIN,
    END,
    Choice,
    Int,
    Key,
    SchemaError,
    Section,
    TaskSchema,
    markdown,
    pick,
    splice,
)
from slotlab.defaults import DATA, MODEL, SLOT_ATTENTION
from slotlab.errors import ConfigError
from slotlab.validate import RULES, check_config_values, leaves

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "resolved_presets.json"


def resolved_now() -> dict:
    out = {name: load_config(name) for name in available_configs()}
    out["<defaults:object_discovery>"] = load_config(None)
    out["<defaults:set_prediction>"] = load_config(None, ["task=set_prediction"])
    return out


def test_every_preset_resolves_as_before_the_schema():
    """Every value the fixture holds resolves to the same value of the same type; a key added since then must
    resolve to its declared default (a preset that sets it is a deliberate change: update the fixture)."""
    before = json.loads(FIXTURE.read_text())
    now = resolved_now()
    assert set(before) == set(now), "a preset was added or removed: update the fixture"
    for name, cfg in now.items():
        old, new = leaves(before[name]), leaves(cfg)
        assert set(old) <= set(new), (name, "keys removed", set(old) - set(new))
        changed = {k: (old[k], new[k]) for k in old if json.dumps(old[k]) != json.dumps(new[k])}  # 1 != 1.0
        assert not changed, (name, changed)
        default = leaves(task_schema(cfg["task"]).defaults())
        added = {k: v for k, v in new.items() if k not in old and json.dumps(v) != json.dumps(default[k])}
        assert not added, (name, "new keys set away from their defaults", added)


def test_key_order_is_the_declaration_order():
    """Configs (config.yaml, 'Known keys here' messages) list keys in the order the schema declares them."""
    for schema in task_schemas():
        assert list(leaves(defaults_for(schema.name))) == list(schema.keys)
        assert list(defaults_for(schema.name)) == ["task", "seed", "data", "model", "optim", "trainer", "run", "eval"]


def test_docs_key_table_is_generated():
    text = (ROOT / "docs" / "configs.md").read_text()
    assert splice(text, markdown(task_schemas())) == text, "docs/configs.md is out of date: python tools/config_docs.py"
    for schema in task_schemas():
        for path in schema.keys:
            assert path == "task" or f"| `{path}` |" in text


def test_splice_refuses_text_without_markers():
    with pytest.raises(ValueError, match="needs one"):
        splice("no markers here", "| table |")
    assert splice(f"a\n{BEGIN}\nold\n{END}\nb", "new\n") == f"a\n{BEGIN}\nnew\n{END}\nb"


def test_derived_tables_follow_the_declarations():
    od = task_schema("object_discovery")
    assert od.keys["optim.cooldown_steps"].default == 0 and od.defaults()["optim"]["cooldown_steps"] == 0
    assert RULES["optim.cooldown_steps"] is od.keys["optim.cooldown_steps"].rule
    assert od.types()["optim.ema_decay"] == (float, type(None))
    assert "optim.cooldown_steps" not in od.types()  # its type is its default's
    safe = od.safe_on_resume()
    assert "trainer.max_steps" in safe and "data.eval_batch_size" in safe
    assert not {p for p in safe if p.startswith(("model.", "optim.", "seed", "run."))}
    sp = task_schema("set_prediction")
    assert sp.defaults()["optim"]["warmup_steps"] == 1000 and od.defaults()["optim"]["warmup_steps"] == 10000
    assert sp.keys["optim.warmup_steps"].rule is od.keys["optim.warmup_steps"].rule  # one declaration


def test_defaults_are_fresh_copies():
    a = defaults_for("object_discovery")
    a["model"]["encoder_channels"].append(1)
    assert defaults_for("object_discovery")["model"]["encoder_channels"] == [32, 32, 32, 32]


def test_builder_arguments_are_constructor_parameters():
    """Every argument the schema passes to a model constructor is one of its parameters (and K arrives)."""
    from slotlab.tasks.object_discovery.model import ObjectDiscoveryModel, ObjectDiscoverySlotMLP
    from slotlab.tasks.set_prediction.model import SetPredictionModel, SetPredictionSlotMLP

    cases = {
        ("object_discovery", "slot_attention"): ObjectDiscoveryModel,
        ("object_discovery", "slot_mlp"): ObjectDiscoverySlotMLP,
        ("set_prediction", "slot_attention"): SetPredictionModel,
        ("set_prediction", "slot_mlp"): SetPredictionSlotMLP,
    }
    for (task, kind), cls in cases.items():
        model_cfg = {**defaults_for(task)["model"], "kind": kind, "num_slots": 5}
        kwargs = task_schema(task).model_kwargs(model_cfg)
        params = set(inspect.signature(cls).parameters)
        assert set(kwargs) <= params, (task, kind, set(kwargs) - params)
        assert kwargs["num_slots"] == 5 and "kind" not in kwargs
    od = task_schema("object_discovery").model_kwargs({**defaults_for("object_discovery")["model"], "kind": "slot_mlp"})
    assert od["slot_mlp_grid"] == 8 and "iters" not in od and "slot_attention" not in od
    sa = task_schema("set_prediction").model_kwargs(defaults_for("set_prediction")["model"])
    assert sa["slot_attention"] == SLOT_ATTENTION.defaults() and "grid" not in sa


def test_builder_passes_each_model_key():
    """A model key's value reaches the built model (one per kind of argument: plain, nested section)."""
    from slotlab.tasks import get_task

    cfg = load_config("tetrominoes_quick", ["model.num_slots=5", "model.slot_attention.slot_init=per_slot"])
    model = get_task("object_discovery").build_model(cfg)
    assert model.slot_attention.num_slots == 5 and model.slot_attention.slot_init == "per_slot"
    cfg = load_config(None, ["task=set_prediction", "model.kind=slot_mlp", "model.slot_mlp.grid=4"])
    model = get_task("set_prediction").build_model(cfg)
    assert model.encoder.slot_mlp.grid == (4, 4)


# ------------------------------------------------------------------------- a task declared elsewhere
TOY = TaskSchema(
    "toy_schema",
    doc="a task declared in a test",
    data={**pick(DATA, "train_size", "batch_size", "eval_batch_size", train_size=10, batch_size=2)},
    model={
        **pick(MODEL, "kind", "num_slots", num_slots=3),
        "width": Key(16, Int(1, 64), "width of the toy model"),
        "mode": Key("a", Choice(("a", "b")), "mode", resume=True, arg="toy_mode"),
        "slot_attention": SLOT_ATTENTION,
    },
    shared_defaults={"trainer.max_steps": 7},
)


def test_a_toy_schema_derives_everything():
    assert TOY.defaults()["data"] == {"train_size": 10, "batch_size": 2, "eval_batch_size": 64}
    assert TOY.defaults()["trainer"]["max_steps"] == 7 and TOY.defaults()["task"] == "toy_schema"
    assert TOY.rules()["model.width"] == Int(1, 64)
    assert "model.mode" in TOY.safe_on_resume()
    kwargs = TOY.model_kwargs(TOY.defaults()["model"])
    assert kwargs["toy_mode"] == "a" and kwargs["width"] == 16 and "mode" not in kwargs
    table = markdown([task_schema("object_discovery"), TOY])
    assert "### Task `toy_schema`: a task declared in a test" in table and "| `model.width` | `16` | int |" in table


def test_a_registered_toy_task_is_validated_by_its_schema():
    """Registered with the task registry, the toy's keys are known, typed and range-checked like built-in ones."""
    from slotlab.tasks import get_task, register, unregister

    class Toy(type(get_task("object_discovery"))):
        name = "toy_schema"
        schema = TOY
        defaults = TOY.defaults()

        def check_config(self, cfg):
            return None

    register(Toy())
    try:
        cfg = validate({"task": "toy_schema", "model": {"width": 32}}, defaults_for("toy_schema"))
        assert cfg["model"]["width"] == 32 and cfg["trainer"]["max_steps"] == 7
        check_config_values(cfg)
        assert RULES["model.width"] == Int(1, 64)
        with pytest.raises(ConfigError, match=r"model.width must be >= 1 and <= 64"):
            check_config_values({**cfg, "model": {**cfg["model"], "width": 65}})
        with pytest.raises(ConfigError, match=r"unknown config key 'model.widht'. Did you mean model.width\?"):
            validate({"task": "toy_schema", "model": {"widht": 3}}, defaults_for("toy_schema"))
    finally:
        unregister("toy_schema")
    assert "model.width" not in RULES


def test_wrong_declarations_fail_at_declaration():
    with pytest.raises(SchemaError, match="optim.nope: no such key"):
        TaskSchema("bad", data={}, model={}, shared_defaults={"optim.nope": 1})
    with pytest.raises(ConfigError, match="model.width must be"):
        TaskSchema("bad", data={}, model={"width": Key(0, Int(1, 4), "width")})
    with pytest.raises(SchemaError, match="has no doc"):
        TaskSchema("bad", data={}, model={"width": Key(1, Int(1, 4), "")})
    with pytest.raises(SchemaError, match="is not"):
        TaskSchema("bad", data={}, model={"width": Key("1", Int(1, 4), "width", types=(int,))})
    with pytest.raises(KeyError):
        pick(DATA, "train_size", nope=1)
    assert isinstance(TOY.tree.keys["model"], Section)
