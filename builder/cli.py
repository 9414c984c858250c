"""The kernel-prompts command line: thin wrappers over the library."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from builder.errors import KernelPromptsError, PromptParseError

DEFAULT_DATASET_DIR = Path("outputs/dataset")


class BadInput(click.ClickException):
    """A file that is not what the command reads: exit code 2."""

    exit_code = 2


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's errors into clean click errors."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PromptParseError as exc:
            raise BadInput(str(exc)) from exc
        except KernelPromptsError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def read_text(file: Any) -> str:
    """A file opened in binary mode, as UTF-8 text with its line ends as they are."""
    try:
        return file.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{file.name}: not UTF-8 text ({exc})") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kernel-prompts")
def cli() -> None:
    """Build a HuggingFace dataset of Triton kernel-optimization prompts.

    Each row pairs a prompt (GPU spec, stage, current code, its ncu metrics) with a verified,
    measured reference solution.
    """


@cli.command()
@click.argument("prompt_file", type=click.File("rb"))
@friendly_errors
def parse(prompt_file: Any) -> None:
    """Print the JSON spec of PROMPT_FILE (a file or -).

    The spec holds the GPU key, the stage key and text variant, the current code, and the
    metrics as {kernel_name: {metric: value}}. Parts that are not the registry's or the
    catalog's (another GPU block or stage wording, other blank lines or text between
    sections, another metrics JSON layout) are kept verbatim in the spec, so render gives the
    file back byte for byte. Exits with code 2 when a section is missing, naming it.

    Example: kernel-prompts parse seeds/avgpool2d/seed_prompt.txt > spec.json
    """
    from builder.prompt import parse as parse_prompt

    click.echo(parse_prompt(read_text(prompt_file)).to_json(), nl=False)


@cli.command()
@click.argument("spec_file", type=click.File("r", encoding="utf-8"))
@friendly_errors
def render(spec_file: Any) -> None:
    """Print the prompt for the JSON spec in SPEC_FILE (a file or -).

    Example: kernel-prompts parse seed.txt | kernel-prompts render - | diff - seed.txt
    """
    from builder.prompt import PromptSpec, render as render_prompt

    sys.stdout.write(render_prompt(PromptSpec.from_json(spec_file.read())))


@cli.command("new-problem")
@click.argument("prompt_file", type=click.File("rb"))
@click.option("--key", required=True, help="Folder name under seeds/, e.g. maxpool1d.")
@click.option("--kernelbench-id", "kernelbench_id", type=int, required=True, help="KernelBench problem id, e.g. 41.")
@click.option("--name", required=True, help="KernelBench problem name, e.g. 41_Max_Pooling_1D.")
@click.option("--level", type=int, default=1, show_default=True, help="KernelBench level.")
@click.option("--shape", default=None,
              help="The benchmark's one float32 input, comma-separated, e.g. 64,192,65536 (or use --input).")
@click.option("--input", "input_args", multiple=True, metavar="NAME=DIMS[:DTYPE[:LOW:HIGH]]",
              help="An argument of forward, in order (repeatable), e.g. --input predictions=32768x4096:float32 "
                   "--input targets=32768:int64:0:4096 (integers need their range [LOW, HIGH)).")
@click.option("--init", "init_args", multiple=True, metavar="NAME=VALUE",
              help="Argument of Model(...), in order (repeatable), any TOML value, e.g. --init kernel_size=8 "
                   "--init normalized_shape=[64,256,256].")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder that holds the problems (default: the project's seeds/).")
@friendly_errors
def new_problem(prompt_file: Any, key: str, kernelbench_id: int, name: str, level: int, shape: str | None,
                input_args: tuple[str, ...], init_args: tuple[str, ...], root: Path | None) -> None:
    """Start seeds/KEY/ from PROMPT_FILE, a stage-1 prompt of the family (a file or -).

    Writes manifest.toml (benchmark init args and inputs, tolerances 1e-4, one starter case to
    extend, a commented [space] to fill in), kernel.py (the prompt's current code, verbatim),
    seed_prompt.txt (the prompt) and seed_metrics.json (its ncu metrics). The benchmark's input is
    one float32 tensor of --shape, or --input once per argument of forward. Refuses an existing
    folder. Left to do: reference.py, more cases, the [space], the solutions.

    Example: kernel-prompts new-problem prompt.txt --key maxpool1d --kernelbench-id 41
    --name 41_Max_Pooling_1D --shape 64,192,65536 --init kernel_size=8 --init stride=1
    --init padding=4 --init dilation=3

    Example: kernel-prompts new-problem prompt.txt --key crossentropy --kernelbench-id 95
    --name 95_CrossEntropyLoss --input predictions=32768x4096:float32
    --input targets=32768:int64:0:4096
    """
    from builder.newproblem import new_problem as start_problem
    from builder.newproblem import parse_init, parse_input, parse_shape

    inputs = tuple(parse_input(text) for text in input_args) or None
    folder = start_problem(prompt_file.read(), key, kernelbench_id, name, parse_shape(shape) if shape else None,
                           parse_init(init_args), level=level, root=root, inputs=inputs)
    click.echo(f"wrote {folder}: manifest.toml, kernel.py, seed_prompt.txt, seed_metrics.json")
    click.echo("next: write reference.py, add cases and the [space] to manifest.toml, write solutions/<stage>.py")


@cli.command()
@click.option("--problem", "-p", "keys", multiple=True, help="Problem key (repeatable); default: all.")
@click.option("--force", is_flag=True, help="Re-measure everything, even where records are fresh.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: one worker per GPU of this machine; ray: tasks on a Ray cluster (pip install 'kernel-prompts[ray]').")
@click.option("--gpus", type=int, default=None, help="local: how many GPUs to use. [default: every visible GPU]")
@click.option("--address", default=None, help="ray: the cluster to join (e.g. auto); a local Ray is started without it.")
@click.option("--verify-per-gpu", type=click.IntRange(min=1), default=1, show_default=True,
              help="Problems whose verifications share a GPU at once (each holds one benchmark input: mind the "
                   "GPU's memory). Timing and profiling always have a GPU to themselves.")
@friendly_errors
def measure(keys: tuple[str, ...], force: bool, executor: str, gpus: int | None, address: str | None,
            verify_per_gpu: int) -> None:
    """Measure the seed kernels, baselines and reference solutions on this machine's GPUs.

    For each problem, three jobs: correctness of every code in one sandbox on the GPU, timing side
    by side (twice, for the run's noise) with torch eager, torch.compile and the problem's ceiling
    probes, and one ncu process that profiles every code. A problem's records are written as
    soon as its own jobs are done. Only stale parts are measured again: a new case in a manifest
    re-runs the verification alone. Records go to outputs/measurements/<gpu>/<problem>/; a killed
    run keeps them and resumes where it stopped. Each job's progress line says where its time
    went, and the run ends with the sum per phase. Set KP_GPU_MEMORY_GIB=22 to run every judge
    process as if on a 24 GB card, and KP_HOST_JOBS=0 to run every job in a child process of its
    own instead of in its GPU's worker (for debugging). Without a GPU, measure does what the CPU
    can: records whose verification alone is stale (the manifest's checks changed) are checked
    again in the Triton interpreter; anything else that is stale is listed as needing a GPU.

    \b
    Examples:
      kernel-prompts measure --problem avgpool1d --gpus 2
      KP_GPU_MEMORY_GIB=22 kernel-prompts measure --verify-per-gpu 3   (on an 80 GB GPU)
    """
    import time

    from builder.executors import ExecutorError
    from builder.measure import measure as run_measure
    from builder.measure import refresh_checks
    from builder.seeds import get_problem, load_problems

    import torch

    problems = [get_problem(k) for k in keys] if keys else load_problems()
    start = time.monotonic()
    progress = lambda msg: click.echo(msg, err=True)  # noqa: E731
    if not torch.cuda.is_available() and not force:
        written = refresh_checks(problems, progress=progress)
    else:
        try:
            written = run_measure(problems, force=force, progress=progress, executor=executor, gpus=gpus,
                                  address=address, verify_per_gpu=verify_per_gpu)
        except ExecutorError as exc:
            raise BadInput(str(exc)) from exc
    for key, labels in written.items():
        click.echo(f"{key}: wrote {len(labels)} record(s){': ' + ', '.join(labels) if labels else ''}")
    click.echo(f"measure took {time.monotonic() - start:.0f} s")


class _Bar:
    """Adapts click.progressbar to the library's (items, label) -> iterable progress hook."""

    def __call__(self, items: list[Any], label: str) -> Any:
        with click.progressbar(items, label=label, file=sys.stderr,
                               item_show_func=lambda item: item and f"{item[0].key}/{item[1]}") as bar:
            yield from bar


@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATASET_DIR,
              show_default=True, help="Dataset folder; an earlier one is replaced only once the new one is complete.")
@click.option("--allow-missing", is_flag=True, help="Skip rows whose records are missing or stale, with a report.")
@click.option("--skip-verify", is_flag=True, help="Do not re-check the reference solutions on the CPU interpreter.")
@click.option("--repo-id", default=None, help="Hub id shown in the card's loading example.")
@friendly_errors
def build(out_dir: Path, allow_missing: bool, skip_verify: bool, repo_id: str | None) -> None:
    """Build the dataset: one row per (problem, stage, GPU), in the Hub layout.

    Rows join the seeds, the stage catalog and the measurement records under
    outputs/measurements. Without a GPU the committed records are used; on a GPU machine what is
    missing is measured first. The reference solutions are re-checked on the CPU interpreter
    unless --skip-verify. Rows whose records are missing or stale are an error listing them,
    unless --allow-missing.

    Example: kernel-prompts build --out outputs/dataset
    """
    from builder.build import build as run_build
    from builder.card import CardParams
    from builder.seeds import load_problems

    folder, rows, skipped = run_build(
        load_problems(), out_dir, allow_missing=allow_missing, skip_verify=skip_verify, bar=_Bar(),
        card_params=CardParams(repo_id=repo_id) if repo_id else CardParams(),
        progress=lambda msg: click.echo(msg, err=True),
    )
    for s in skipped:
        click.echo(f"{'skipped' if s.missing else 'excluded'} {s.row_id}: {s.reason}", err=True)
    click.echo(f"wrote {len(rows)} rows to {folder}")


@cli.command()
@click.argument("repo_id")
@click.option("--dataset", "dataset_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_DATASET_DIR, show_default=True, help="Dataset folder written by build.")
@click.option("--private", is_flag=True, help="Create the repository as private (an existing one keeps its visibility).")
@click.option("--revision", default=None, help="Branch to push to, created from main when missing. [default: main]")
@click.option("--token", default=None, help="Hub token. [default: $HF_TOKEN, else the `hf auth login` token]")
@friendly_errors
def push(repo_id: str, dataset_dir: Path, private: bool, revision: str | None, token: str | None) -> None:
    """Upload the dataset folder to the HuggingFace Hub as REPO_ID (namespace/name).

    The folder must pass the integrity check first: the card is there, the rows load with the
    Features of schemas/row.schema.json and pass the schema. HF_ENDPOINT selects another Hub.

    Example: kernel-prompts push my-user/kernel-prompts --dataset outputs/dataset
    """
    from builder.push import push_dataset

    url = push_dataset(dataset_dir, repo_id, token=token, private=private, revision=revision)
    click.echo(f"pushed {dataset_dir} to {url}")


@cli.command()
@click.option("--problem", "-p", "keys", multiple=True, help="Problem key (repeatable); default: all.")
@click.option("--records", "gpu", default=None, metavar="GPU",
              help="Print the table from the committed records of GPU (e.g. h100_sxm) instead of timing now.")
@friendly_errors
def bench(keys: tuple[str, ...], gpu: str | None) -> None:
    """Print the benchmark table: problem, stage, median ms, GB/s, % of the problem's ceiling, speedups.

    Speedups are against the code each stage improves, torch eager and torch.compile; the
    numbers of one problem come from one timing run. Without --records it times everything now
    (needs a CUDA GPU); with --records it reads the records of one measure run.

    Example: kernel-prompts bench --records h100_sxm
    """
    from builder.bench import format_table, from_records, run_fresh
    from builder.seeds import get_problem, load_problems

    problems = [get_problem(k) for k in keys] if keys else load_problems()
    lines, copy = [], {}
    for problem in problems:
        got, copy[problem.key] = from_records(problem, gpu) if gpu else run_fresh(problem)
        lines += got
    click.echo(format_table(lines, copy))


@cli.command()
@click.option("--problem", "-p", "key", required=True, help="Problem key, e.g. avgpool1d.")
@click.option("--stage", "-s", default=None,
              help="Stage key the answers respond to: on a GPU, speedups are against that stage's current code "
                   "(default: the seed kernel).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where correctness runs: cuda also times correct code; cpu uses the Triton interpreter.")
@click.option("--timeout", "timeout_s", type=float, default=300.0, show_default=True,
              help="Seconds one answer's checks may take in the child process.")
@click.option("--strict", is_flag=True, help="Reject on any finding, output-rule breaches (rule_order, "
                                               "import_shim, forbidden_section) included.")
@click.option("--reward", "as_reward", is_flag=True,
              help="On a GPU, judge as the RL reward does: one benchmark-size trial, 30 timed runs, eager as the "
                   "only baseline (default: five trials, 100 runs, eager and torch.compile).")
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Judge the answers this many times in one process: the first round pays the process's starts and "
                   "compiles, the later ones cost what a trainer's later steps do. Each round's wall time and "
                   "seconds per phase go to stderr.")
@click.argument("answer_files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@friendly_errors
def score(key: str, stage: str | None, device: str, timeout_s: float, strict: bool, as_reward: bool, rounds: int,
          answer_files: tuple[Path, ...]) -> None:
    """Judge model answers; print one JSON verdict per answer.

    Each ANSWER_FILE is one answer (text with a python code block; a .py file is taken as the
    code) or a .jsonl file of answers: per line a string or an object with "completion",
    "messages" or "content". The answers of all the files are judged as one batch, in order. Each
    verdict names its file and has ok, reason, detail, correct (correct and safe),
    follows_rules (the prompt's output rules), findings, errors, speedups, a scalar reward and
    the seconds its judging spent per phase. A correct answer that breaks an output rule is ok
    with follows_rules false and a reduced reward, unless --strict. Untrusted code runs only in an
    isolated child process, one per answer; the answers of a file are checked several at once,
    and on a GPU timed one at a time. A line goes to stderr as each answer's checks and timing run
    end, and each round's wall time and seconds per phase after it. Exit code 0 when all are ok, 1
    when any is rejected, 2 on a usage error.

    \b
    Examples:
      kernel-prompts score --problem avgpool1d --stage block_tiling answer.md
      kernel-prompts score -p avgpool1d --reward --rounds 2 seeds/avgpool1d/accepted/*.py
    """
    import json
    import time

    import torch

    from builder.errors import ManifestError, RegistryError
    from builder.judge.phases import Phases
    from builder.judge.score import REWARD_SETTINGS, SCORE_SETTINGS, current_code, judge_batch, read_answers
    from builder.seeds import get_problem

    try:
        problem = get_problem(key)
        current = current_code(problem, stage)
        read = [(path, answer) for path in answer_files for answer in read_answers(path)]
    except (ManifestError, RegistryError, ValueError, UnicodeDecodeError) as exc:
        raise BadInput(str(exc)) from exc
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    answers = [answer for _, answer in read]
    verdicts = []
    for round_ in range(1, rounds + 1):
        start = time.monotonic()
        judged = judge_batch(answers, [problem] * len(answers), [current] * len(answers), device=device,
                             settings=REWARD_SETTINGS if as_reward else SCORE_SETTINGS, timeout_s=timeout_s,
                             timer_timeout_s=max(timeout_s, 900.0), strict=strict,
                             progress=lambda line: click.echo(f"round {round_}: {line}", err=True))
        for (path, _), verdict in zip(read, judged):
            click.echo(json.dumps({"problem": key, "stage": stage, "file": str(path),
                                   **({"round": round_} if rounds > 1 else {}), **verdict.to_dict()}))
        phases = Phases()
        for verdict in judged:
            phases.merge(verdict.phases)
        click.echo(f"round {round_} of {rounds}: {len(judged)} answer(s), {sum(v.ok for v in judged)} ok, on {device}\n"
                   f"{phases.table(time.monotonic() - start)}", err=True)
        verdicts += judged
    sys.exit(0 if all(v.ok for v in verdicts) else 1)


@cli.command("eval")
@click.argument("answers_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", "dataset_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_DATASET_DIR, show_default=True, help="Dataset folder whose rows the answers answer.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the summary (metrics overall, per stage, per problem, and every verdict) as JSON here.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="cuda also times correct code against the row's current code; cpu uses the Triton interpreter.")
@click.option("--timeout", "timeout_s", type=float, default=300.0, show_default=True,
              help="Seconds one answer's checks may take in the child process.")
@friendly_errors
def eval_answers(answers_file: Path, dataset_dir: Path, json_out: Path | None, device: str, timeout_s: float) -> None:
    """Judge a model's answers to dataset rows; print fast_p, speedups and reject reasons.

    ANSWERS_FILE is JSONL: per line {"id": <row id>, "completion": <answer>} (or "messages",
    whose last turn is the answer). Each answer is judged for its row's problem; on a GPU,
    correct code is timed against the row's current code. fast_p is the share of answers that
    are correct and faster than the current code by more than p (p = 0, 1, 1.5, 2); without a
    GPU only fast_0, the correctness rate, is measured. Metrics are printed overall, per stage
    and per problem. An id that is no row's is an error naming its line (exit code 2).

    Example: kernel-prompts eval answers.jsonl --dataset outputs/dataset --json eval.json
    """
    import json

    import torch

    from builder.evaluate import format_summary, judge_answers, match_rows, read_eval_answers, summarize
    from builder.validate import read_rows

    try:
        pairs = match_rows(read_eval_answers(answers_file), read_rows(str(dataset_dir)), str(answers_file))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(str(exc)) from exc
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"

    def timer_for(row: dict[str, Any]) -> Any:
        from builder.judge.score import GpuTimer

        return GpuTimer(row["code"]["current"], timeout_s=timeout_s)

    judged = judge_answers(pairs, device=device, timer_for=timer_for, timeout_s=timeout_s,
                           progress=lambda msg: click.echo(msg, err=True))
    summary = summarize(judged)
    click.echo(format_summary(summary))
    if json_out is not None:
        json_out.write_text(json.dumps({"device": device, "dataset": str(dataset_dir), **summary}, indent=2) + "\n")
        click.echo(f"summary written to {json_out}")


@cli.command()
@click.argument("source", default=str(DEFAULT_DATASET_DIR))
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), default=Path("rejects.jsonl"),
              show_default=True, help="Where the rejected rows are written, one JSON object per line.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="cuda also re-times the rows measured on this GPU; cpu uses the Triton interpreter.")
@friendly_errors
def validate(source: str, rejects: Path, device: str) -> None:
    """Re-verify every row of a dataset: SOURCE is a dataset folder or a Hub repo id.

    Each completion goes through the output rules, the anti-cheat checks and correctness on the
    problem's cases (GPU if there is one, else the CPU interpreter). On a GPU, rows measured on
    it are re-timed side by side: a median more than 10% from the recorded one is flagged, and
    so is a solution slower than its current code beyond the noise (3%). Prints a table and a
    count per reason; exit code 0 only when every row passes.

    Example: kernel-prompts validate outputs/dataset --rejects rejects.jsonl
    """
    import torch

    from builder.validate import format_results, read_rows, validate_rows, write_rejects

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu_key = None
    if device == "cuda":
        from builder.gpus import current_device, match_device

        gpu_key = match_device(current_device()).key
    rows = read_rows(source)
    results = validate_rows(rows, device=device, gpu_key=gpu_key, progress=lambda m: click.echo(m, err=True))
    click.echo(format_results(results))
    if write_rejects(results, rejects):
        click.echo(f"rejects written to {rejects}")
    sys.exit(0 if all(r.ok for r in results) else 1)


@cli.command()
@friendly_errors
def problems() -> None:
    """List the problems found under seeds/, with their stages' reference solutions.

    Example: kernel-prompts problems
    """
    from builder.seeds import load_problems

    for p in load_problems():
        solutions = ", ".join(p.solutions) or "none"
        inputs = ", ".join(f"{i.name} {list(i.shape)} {i.dtype}" for i in p.inputs)
        click.echo(f"{p.key}: level {p.level} #{p.id} {p.name}, inputs {inputs}, "
                   f"{len(p.cases)} cases, solutions: {solutions}")
