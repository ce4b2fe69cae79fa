#!/usr/bin/env python3
"""Loader reference test: dspark's loader against independent readers.

Runs the `loader_dump` helper (tests/loader/loader_dump.cpp) and compares what dspark read with
what the `gguf` package (GGUFReader, gguf.quants.dequantize) and the `safetensors` package read
from the same files:
  1. synthetic GGUF files written by gguf.GGUFWriter: metadata of every value type (nested arrays
     included) and random blocks of every dequantizable type the gguf package can dequantize;
  2. synthetic Hugging Face folders (single file and sharded index) written by safetensors;
  3. every *.gguf in DSPARK_MODELS_DIR (default <source-dir>/models); the SmolLM2 and
     Qwen2.5-Coder-0.5B files are required.
Checked exactly: every metadata key/value, tensor names/types/shapes/byte sizes, a CRC-32 of
every tensor's bytes, and dequantized rows (bit-equal floats) of every tensor.
Exit 77 (skip) when a package or the real models are missing, unless DSPARK_REQUIRE_MODELS=1.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import py_util  # noqa: E402

# Required; every other *.gguf in the models folder is checked too.
REAL_MODELS = ["SmolLM2-135M-Instruct.Q4_1.gguf", "qwen2.5-coder-0.5b.gguf"]


try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as QT
    from gguf import GGUFValueType as VT
    from safetensors.numpy import save_file
except ImportError as e:  # pragma: no cover - depends on the environment
    py_util.skip(f"missing Python package: {e}")


class Mismatch(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Mismatch(what)


# ---------------------------------------------------------------- loader_dump output


def decode_dump_value(v):
    """Decodes loader_dump's [kind, value] encoding into (kind, python value)."""
    kind, val = v
    if kind == "f":
        return "f", struct.unpack("<d", struct.pack("<Q", val))[0]
    if kind == "s":
        return "s", bytes.fromhex(val)
    if kind == "a":
        return "a", [decode_dump_value(e) for e in val]
    return kind, val


def run_dump(build_dir: Path, model: Path, prefix: Path, max_rows: int = 4):
    exe = build_dir / "tests" / "loader" / "loader_dump"
    res = subprocess.run([str(exe), str(model), str(prefix), "--max-rows", str(max_rows)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise Mismatch(f"loader_dump failed on {model}: {res.stderr.strip()}")
    dump = json.loads(Path(str(prefix) + ".json").read_text())
    values = np.fromfile(str(prefix) + ".bin", dtype=np.float32)
    meta = {bytes.fromhex(k): decode_dump_value(v) for k, v in dump["metadata"].items()}
    return dump, meta, values


def floats_equal(ref: np.ndarray, got: np.ndarray) -> bool:
    """Bit equality, except that any NaN matches any NaN."""
    ref = np.ascontiguousarray(ref, dtype=np.float32)
    got = np.ascontiguousarray(got, dtype=np.float32)
    if ref.shape != got.shape:
        return False
    both_nan = np.isnan(ref) & np.isnan(got)
    return bool(np.all((ref.view(np.uint32) == got.view(np.uint32)) | both_nan))


def compare_rows(name, tensor_dump, values, dequant_row) -> int:
    """Compares the dumped rows of one tensor with dequant_row(r); returns rows checked."""
    cols = tensor_dump["cols"]
    off = tensor_dump["values_offset"]
    for k, r in enumerate(tensor_dump["row_indices"]):
        got = values[off + k * cols: off + (k + 1) * cols]
        ref = dequant_row(r)
        if not floats_equal(ref, got):
            bad = int(np.argmax(ref.view(np.uint32) != got.view(np.uint32)))
            raise Mismatch(f"{name} row {r}: element {bad} is {got[bad]!r}, reference "
                           f"{ref[bad]!r}")
    return len(tensor_dump["row_indices"])


# ---------------------------------------------------------------- GGUF comparison

SCALAR_KIND = {VT.UINT8: "u", VT.UINT16: "u", VT.UINT32: "u", VT.UINT64: "u",
               VT.INT8: "i", VT.INT16: "i", VT.INT32: "i", VT.INT64: "i",
               VT.FLOAT32: "f", VT.FLOAT64: "f", VT.BOOL: "b"}


def rebuild_value(parts, pos, vtype):
    """Rebuilds one value from GGUFReader's flat field parts; returns ((kind, value), next)."""
    if vtype == VT.STRING:
        return ("s", bytes(parts[pos + 1].tobytes())), pos + 2
    if vtype == VT.ARRAY:
        itype = VT(int(parts[pos][0]))
        count = int(parts[pos + 1][0])
        pos += 2
        elems = []
        for _ in range(count):
            elem, pos = rebuild_value(parts, pos, itype)
            elems.append(elem)
        return ("a", elems), pos
    kind = SCALAR_KIND[vtype]
    raw = parts[pos][0]
    val = bool(raw) if kind == "b" else float(raw) if kind == "f" else int(raw)
    return (kind, val), pos + 1


def values_equal(a, b) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "a":
        return len(a[1]) == len(b[1]) and all(values_equal(x, y) for x, y in zip(a[1], b[1]))
    if a[0] == "f" and a[1] != a[1]:
        return b[1] != b[1]  # NaN
    return a[1] == b[1]


def compare_gguf(build_dir: Path, path: Path, work: Path, max_rows: int = 4) -> str:
    dump, meta, values = run_dump(build_dir, path, work / path.stem, max_rows)
    reader = gguf.GGUFReader(str(path))
    check(dump["format"] == "gguf", f"{path.name}: format {dump['format']}")
    version = int(reader.fields["GGUF.version"].parts[0][0])
    check(dump["gguf_version"] == version, f"{path.name}: version {dump['gguf_version']}")

    ref_meta = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue  # header fields the reader exposes as pseudo-keys
        value, end = rebuild_value(field.parts, 3, VT(int(field.parts[2][0])))
        check(end == len(field.parts), f"{path.name}: field {name} not fully consumed")
        ref_meta[name.encode()] = value
    check(set(meta) == set(ref_meta),
          f"{path.name}: metadata keys differ: {set(meta) ^ set(ref_meta)}")
    for key, value in ref_meta.items():
        check(values_equal(meta[key], value), f"{path.name}: metadata {key!r} differs")

    check(len(dump["tensors"]) == len(reader.tensors), f"{path.name}: tensor count differs")
    by_name = {t["name"]: t for t in dump["tensors"]}
    rows_checked = 0
    types_seen = set()
    for t in reader.tensors:
        d = by_name.get(t.name)
        check(d is not None, f"{path.name}: tensor {t.name} missing")
        qtype = QT(int(t.tensor_type))
        types_seen.add(qtype.name)
        check(d["type"] == qtype.name, f"{t.name}: type {d['type']} vs {qtype.name}")
        ne = [int(x) for x in t.shape]
        check(d["shape"] == ne[::-1], f"{t.name}: shape {d['shape']} vs ne {ne}")
        check(d["n_bytes"] == int(t.n_bytes), f"{t.name}: n_bytes {d['n_bytes']} vs {t.n_bytes}")
        raw = np.ascontiguousarray(t.data).reshape(-1).view(np.uint8)
        check(raw.size == d["n_bytes"], f"{t.name}: reader data size")
        check(d["crc32"] == zlib.crc32(raw), f"{t.name}: tensor bytes differ (CRC-32)")
        check(len(d["row_indices"]) > 0, f"{t.name}: no rows dumped for {qtype.name}")
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        row_bytes = d["cols"] // block * type_size
        rows_checked += compare_rows(
            t.name, d, values,
            lambda r: gguf.quants.dequantize(raw[r * row_bytes:(r + 1) * row_bytes], qtype))
    return f"{path.name}: {len(ref_meta)} keys, {len(reader.tensors)} tensors, " \
           f"{rows_checked} rows, types {sorted(types_seen)}"


# ---------------------------------------------------------------- synthetic GGUF

# Byte ranges of the f16 scale fields in each block; random bytes there could be inf/NaN.
F16_FIELDS = {QT.Q4_0: [0], QT.Q4_1: [0, 2], QT.Q5_0: [0], QT.Q5_1: [0, 2], QT.Q8_0: [0],
              QT.Q2_K: [80, 82], QT.Q3_K: [108], QT.Q4_K: [0, 2], QT.Q5_K: [0, 2],
              QT.Q6_K: [208]}


def random_blocks(rng, qtype, n_blocks):
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    data = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scales = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
        data[:, off:off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return data


def write_synthetic_gguf(path: Path) -> None:
    rng = np.random.default_rng(1234)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -2**63)
    w.add_float32("t.f32", 0.1)
    w.add_float64("t.f64", -1e300)
    w.add_bool("t.bool", True)
    w.add_string("t.string", "héllo wörld")
    w.add_array("t.array_i32", [1, -2, 3])
    w.add_array("t.array_f32", [0.5, -1.25])
    w.add_array("t.array_str", ["a", "", "ccc"])
    w.add_array("t.array_bool", [True, False])
    w.add_key_value("t.nested", [[1, 2], [3], [4, 5, 6]], VT.ARRAY)
    w.add_key_value("t.nested_str", [["x", "y"], ["z"]], VT.ARRAY)

    rows = 3
    for qtype in F16_FIELDS:
        block, _ = gguf.GGML_QUANT_SIZES[qtype]
        data = random_blocks(rng, qtype, rows * 2).reshape(rows, -1)
        w.add_tensor(f"q.{qtype.name}", data, raw_dtype=qtype)
    plain = (rng.standard_normal((rows, 64)) * 3).astype(np.float32)
    w.add_tensor("p.F32", plain)
    w.add_tensor("p.F16", plain.astype(np.float16))
    bf16 = (plain.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(rows, -1)
    w.add_tensor("p.BF16", bf16, raw_dtype=QT.BF16)
    w.add_tensor("p.vec", plain[0].copy())
    w.add_tensor("p.3d", (rng.standard_normal((2, 3, 32))).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------- synthetic safetensors


def flatten_config(obj, prefix="hf"):
    """The documented config.json flattening, written independently of the C++ code."""
    out = {}
    for k, v in obj.items():
        key = f"{prefix}.{k}"
        if v is None:
            continue
        if isinstance(v, dict):
            out.update(flatten_config(v, key))
        else:
            out[key.encode()] = json_to_meta(v)
    return out


def json_to_meta(v):
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, int):
        return ("i", v) if v < 2**63 else ("u", v)
    if isinstance(v, float):
        return ("f", v)
    if isinstance(v, str):
        return ("s", v.encode())
    if isinstance(v, list):
        return ("a", [json_to_meta(e) for e in v])
    return ("s", json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode())


def bf16_to_f32(u16: np.ndarray) -> np.ndarray:
    return (u16.astype(np.uint32) << 16).view(np.float32)


def write_bf16_safetensors(path: Path, tensors) -> None:
    """safetensors (numpy) cannot write BF16; this writes the documented layout directly."""
    header, blobs, offset = {}, [], 0
    for name, u16 in tensors.items():
        blob = u16.astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(u16.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def compare_safetensors(build_dir: Path, folder: Path, work: Path, config, ref_tensors) -> str:
    dump, meta, values = run_dump(build_dir, folder, work / folder.name, max_rows=1000)
    check(dump["format"] == "safetensors", f"{folder.name}: format")
    check(dump["gguf_version"] == 0, f"{folder.name}: gguf_version")
    ref_meta = flatten_config(config)
    hf_meta = {k: v for k, v in meta.items() if k.startswith(b"hf.")}
    check(set(hf_meta) == set(ref_meta),
          f"{folder.name}: config keys differ: {set(hf_meta) ^ set(ref_meta)}")
    for key, value in ref_meta.items():
        check(values_equal(hf_meta[key], value), f"{folder.name}: {key!r} differs")
    by_name = {t["name"]: t for t in dump["tensors"]}
    check(set(by_name) == set(ref_tensors), f"{folder.name}: tensor names differ")
    for name, (dtype, ref) in ref_tensors.items():
        d = by_name[name]
        check(d["type"] == dtype, f"{name}: type {d['type']} vs {dtype}")
        check(d["shape"] == list(ref.shape), f"{name}: shape {d['shape']} vs {ref.shape}")
        flat = ref.reshape(d["rows"], d["cols"])
        compare_rows(name, d, values, lambda r: flat[r])
    return f"{folder.name}: {len(ref_meta)} config keys, {len(ref_tensors)} tensors"


def synthetic_safetensors(build_dir: Path, work: Path):
    rng = np.random.default_rng(99)
    config = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "rms_norm_eps": 1e-6,
              "tie_word_embeddings": False, "rope_scaling": {"factor": 8.0, "type": "llama3",
                                                            "inner": {"deep": [1, 2]}},
              "eos_token_id": [1, 2], "big": 2**64 - 1, "neg": -5, "none": None,
              "mixed": [{"a": 1}, None, [3, "x"]], "name": "tiny ü"}
    a = rng.standard_normal((4, 8)).astype(np.float32)
    b = rng.standard_normal((3, 2, 16)).astype(np.float16)
    c = rng.standard_normal(10).astype(np.float32)
    bf = (rng.standard_normal((2, 8)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)

    single = work / "hf_single"
    single.mkdir()
    (single / "config.json").write_text(json.dumps(config))
    save_file({"a": a, "b": b, "c": c}, str(single / "model.safetensors"),
              metadata={"format": "pt"})
    results = [compare_safetensors(build_dir, single, work, config,
                                   {"a": ("F32", a), "b": ("F16", b.astype(np.float32)),
                                    "c": ("F32", c)})]

    sharded = work / "hf_sharded"
    sharded.mkdir()
    (sharded / "config.json").write_text(json.dumps(config))
    save_file({"a": a, "c": c}, str(sharded / "model-00001-of-00002.safetensors"))
    write_bf16_safetensors(sharded / "model-00002-of-00002.safetensors", {"bf": bf})
    index = {"metadata": {"total_size": a.nbytes + c.nbytes + bf.nbytes},
             "weight_map": {"a": "model-00001-of-00002.safetensors",
                            "c": "model-00001-of-00002.safetensors",
                            "bf": "model-00002-of-00002.safetensors"}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    results.append(compare_safetensors(build_dir, sharded, work, config,
                                       {"a": ("F32", a), "c": ("F32", c),
                                        "bf": ("BF16", bf16_to_f32(bf))}))
    return results


# ---------------------------------------------------------------- main


def main() -> int:
    args = py_util.parse_args()
    build_dir = Path(args.build_dir)
    models_dir = Path(py_util.models_dir(args))
    with tempfile.TemporaryDirectory(prefix="dspark_loader_ref_") as tmp:
        work = Path(tmp)
        try:
            synth = work / "synthetic.gguf"
            write_synthetic_gguf(synth)
            print(compare_gguf(build_dir, synth, work, max_rows=1000))
            for line in synthetic_safetensors(build_dir, work):
                print(line)
            missing = [m for m in REAL_MODELS if not (models_dir / m).is_file()]
            for path in sorted(models_dir.glob("*.gguf")) if models_dir.is_dir() else []:
                print(compare_gguf(build_dir, path, work))
        except Mismatch as e:
            print(f"FAIL: {e}")
            return 1
    if missing:
        py_util.skip(f"synthetic checks passed; real models missing from {models_dir}: {missing}")
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
