"""``RunConfig``: everything ``aarlab run`` needs to know, from a YAML file, environment overrides and flags.

A config is validated in two passes, both before anything is written to disk: ``RunConfig.load`` checks its
shape (types, ranges, unknown keys — a typo is an error, not a silently ignored setting), and
``RunConfig.check`` checks it against the world (the task dir or dataset exists, every model's provider is
known and has its API key, the sandbox backend works here, Ray is installed for ``--cluster``). Both raise
``UserError`` with one line naming the offending key, so a bad config never leaves a half-made run dir.

Environment overrides use the prefix ``AARLAB_RUN__`` and ``__`` between keys, with YAML values:
``AARLAB_RUN__TEAM__AGENTS=5``, ``AARLAB_RUN__BUDGET__TOTAL__USD=20``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from aarlab.errors import UserError
from aarlab.w2s.prepare import DEFAULT_DATASET, DEFAULT_SEEDS, DEFAULT_SIZE, DEFAULT_STRONG, DEFAULT_WEAK

ENV_PREFIX = "AARLAB_RUN__"
# The library's default sizes (562 teacher labels, 1,500 weak labels per split, 4,000 examples per test part;
# aarlab.w2s.prepare.split_sizes scales them by size / DEFAULT_SIZE): smaller training sets made soft-label
# training copy the teacher, smaller test parts made PGR's test-sampling SE exceed 0.05 (docs/instrument.md).
EMBEDDED_SIZE = DEFAULT_SIZE
# The team's wall-clock budget when the config gives none: a working day for real researchers, and a cap for
# the offline demo, whose researchers finish on their own. With the instrument's 4,000-example test parts a
# method run takes ~2.5 min on 2 cores (it was ~50 s), so three researchers' seeds plus their verification need
# more than the old 12 minutes: the cap leaves room for every result to be verified (issue 14 tracks the time).
DEFAULT_HOURS = 8.0
DEMO_HOURS = 0.75
# The offline demo researcher (registered by aarlab.team with aarlab.llm.register_script).
DEMO_MODEL = "scripted:demo"
# Which real model a run uses when the user gave none but has an API key, in order of preference.
DEFAULT_MODELS = (("ANTHROPIC_API_KEY", "anthropic:claude-sonnet-4-5"), ("OPENAI_API_KEY", "openai:gpt-4o"))
API_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SyntheticTaskConfig(_Section):
    """A generated task (``aarlab.w2s.synthetic``): for tests and for trying the machinery in seconds."""

    n_unlabel: int = Field(200, ge=10)
    n_test: int = Field(200, ge=10)
    seed: int = 0


class TaskConfig(_Section):
    """Which weak-to-strong task the team works on.

    Give ``dir`` (a task dir made by ``aarlab w2s prepare``), or ``synthetic`` (a generated task, seconds),
    or the preparation settings below; with nothing set the run prepares the embedded default (BIG-bench
    MultiEmo sentiment, GloVe → MiniLM, offline, CPU) once and caches it for later runs.
    """

    dir: Path | None = None
    synthetic: SyntheticTaskConfig | None = None
    dataset: str = DEFAULT_DATASET
    weak_model: str = DEFAULT_WEAK
    strong_model: str = DEFAULT_STRONG
    # Examples drawn from the dataset over all splits. The embedded default is smaller than the library's
    # (DEFAULT_SIZE) so that a whole team runs through on 2 CPU cores in minutes.
    size: int = Field(EMBEDDED_SIZE, ge=40)
    seeds: int = Field(DEFAULT_SEEDS, ge=1)  # seeds of the fixed weak and ceiling baselines
    seed: int = 0  # the split's seed
    public_share: float = Field(0.5, gt=0, lt=1)  # share of the test set whose score agents see
    name: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TaskConfig:
        # Settings that differ from their defaults (a saved config.yaml lists the defaults too).
        prepared = {k for k in self.model_fields_set - {"dir", "synthetic"}
                    if getattr(self, k) != type(self).model_fields[k].default}
        sources = [self.dir is not None, self.synthetic is not None, bool(prepared)]
        if sum(sources) > 1:
            raise ValueError("give only one of dir, synthetic, or preparation settings (dataset, models, sizes)")
        return self

    @property
    def prepare_kwargs(self) -> dict[str, Any]:
        """The arguments of ``aarlab.w2s.prepare.prepare`` for this task (all but ``out``)."""
        return {"dataset": self.dataset, "weak": self.weak_model, "strong": self.strong_model, "size": self.size,
                "seeds": self.seeds, "seed": self.seed, "public_share": self.public_share, "name": self.name}


class TeamConfig(_Section):
    """Who the researchers are."""

    agents: int = Field(3, ge=1, le=64)
    # One model for everyone, or a list handed out round-robin; None = a real model if an API key is set,
    # else the offline demo researcher.
    model: str | None = None
    models: list[str] | None = None
    consult_model: str | None = None
    # Built-in direction names, paths to prompt files, or inline text; default: the nine of the study.
    directions: list[str] | None = None
    homogeneous: bool = False
    max_restarts: int = Field(2, ge=0)  # a crashed agent is restarted from its transcript this many times
    # An OpenAI- (or Anthropic-) compatible server for the researchers' models: vLLM, Ollama, llama.cpp's
    # server, a gateway. E.g. model: openai:qwen2.5 with base_url: http://127.0.0.1:8000/v1.
    base_url: str | None = None
    # The environment variable holding that server's API key (default: the provider's own, e.g.
    # OPENAI_API_KEY; a local server at base_url needs none).
    api_key_env: str | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url {value!r} must start with http:// or https://")
        return value

    @field_validator("models")
    @classmethod
    def _non_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("models is an empty list; leave it out to use `model`")
        return value


class AgentBudget(_Section):
    """Limits for each researcher; None means no limit of that kind."""

    usd: float | None = Field(None, ge=0)
    tokens: int | None = Field(None, ge=0)
    hours: float | None = Field(None, gt=0)
    steps: int | None = Field(200, ge=1)
    cpu_hours: float | None = Field(None, gt=0)  # CPU time of its background jobs
    gpu_hours: float | None = Field(None, gt=0)  # GPU time of its background jobs (runtime x GPUs held)


class TotalBudget(_Section):
    """Limits for the whole team: when one is reached every agent stops cleanly."""

    usd: float | None = Field(20.0, ge=0)
    tokens: int | None = Field(None, ge=0)
    hours: float | None = Field(None, gt=0)  # unset: DEFAULT_HOURS, or DEMO_HOURS for the demo researcher
    cpu_hours: float | None = Field(None, gt=0)  # all agents' background jobs together
    gpu_hours: float | None = Field(None, gt=0)


class BudgetConfig(_Section):
    agent: AgentBudget = Field(default_factory=AgentBudget)
    total: TotalBudget = Field(default_factory=TotalBudget)
    submissions_per_run: int = Field(30, ge=1)  # per agent, enforced by the lab server
    submissions_per_hour: int = Field(15, ge=1)


class SandboxConfig(_Section):
    """Where each agent's commands run, and with what resources."""

    backend: str = "bwrap"
    # The `process` backend gives no isolation at all; it has to be asked for in so many words.
    allow_unisolated: bool = False
    # Without a usable cgroup a bwrap sandbox refuses to start (memory per process only, no per-sandbox process
    # count); this runs it anyway with those weaker limits (docs/security.md)
    allow_weak_limits: bool = False
    memory_mb: int = Field(4096, ge=64)
    cpu_seconds: int = Field(3600, ge=1)  # CPU time per command
    command_timeout_s: float = Field(900.0, gt=0)
    # GPUs per agent. ``num_gpus`` is accepted too (Ray's name); a fraction (0.5: two agents share a GPU)
    # only on a Ray cluster, where it is the actor's resource request.
    gpus: float = Field(0, ge=0, validation_alias=AliasChoices("gpus", "num_gpus"))
    num_cpus: float = Field(1.0, gt=0)  # per agent, for Ray placement
    resources: dict[str, float] = Field(default_factory=dict)  # custom Ray resources per agent
    checkpoint_interval_s: float = Field(60.0, gt=0)  # Ray: workspace snapshot period (also on each publish)
    # background jobs each agent may run at once; unset: one per GPU, else its share of this machine's CPUs
    # (on Ray: of num_cpus)
    job_slots: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _one_gpu_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "gpus" in data and "num_gpus" in data:
            raise ValueError("give gpus or num_gpus (the same setting), not both")
        return data


class ServerConfig(_Section):
    """The lab server: embedded (started by ``aarlab run`` on 127.0.0.1) unless ``url`` is given."""

    url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    admin_token: str | None = None  # for an external server; also read from AARLAB_ADMIN_TOKEN
    min_result_seeds: int = Field(3, ge=1)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"server url {value!r} must start with http:// or https://")
        return value


class MonitorsConfig(_Section):
    """Reward-hacking monitors (``aarlab.monitor``): read submissions and transcripts, raise flags."""

    enabled: bool = True
    notify_agents: bool = False  # tell agents about flags raised on their own work
    judge_model: str | None = None  # an optional LLM judge reading transcripts
    interval_s: float = Field(15.0, gt=0)  # how often the monitors look at what is new
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per-detector parameters, by name
    allowed_models: list[str] = Field(default_factory=list)  # beyond the task's weak and strong models
    allow_test_training: bool = False  # transductive use of test inputs is allowed in this task


class VerificationConfig(_Section):
    """Re-running every result post on the held-out split (``aarlab.verify``), beside the agents."""

    enabled: bool = True
    seeds: int = Field(3, ge=1)
    timeout_s: float = Field(1800.0, gt=0)  # wall clock per seed
    backend: str | None = None  # sandbox backend of the re-runs; None: the run's sandbox backend
    # The `process` backend re-runs agents' code with no isolation at all; it has to be asked for in so many words.
    allow_unisolated: bool = False
    threads: int = Field(1, ge=1)  # math threads of a re-run (its share of the CPU)
    nice: int = Field(10, ge=0, le=19)
    memory_mb: int = Field(8192, ge=64)
    gpus: list[int] = Field(default_factory=list)
    gap_z: float = Field(2.0, gt=0)  # a claimed-vs-verified gap beyond this many SEs is flagged (aarlab/verify/_gap.py)
    gap_floor: float = Field(0.02, ge=0)  # ... and beyond this absolute PGR
    # Seeds of the paired re-run on the main split (same training examples and test set as the submission the
    # post names): the check that the snapshot's code earns the submission's score. 0: held-out re-run only.
    reproduce_seeds: int = Field(1, ge=0, le=10)
    # Method runs at once (each with `threads` threads). None: one while the agents work, then as many as the
    # CPUs hold once they have stopped, so the last verifications take the whole machine.
    parallel: int | None = Field(None, ge=1)
    poll_interval_s: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _unisolated_needs_opt_in(self) -> VerificationConfig:
        if self.backend == "process" and not self.allow_unisolated:
            raise ValueError(
                "verification.backend 'process' re-runs agents' code with no isolation at all; "
                "set verification.allow_unisolated: true if you really mean it"
            )
        return self


class RunConfig(_Section):
    """A whole run. ``aarlab run`` with no config uses the defaults: the offline embedded setup."""

    name: str | None = None
    task: TaskConfig = Field(default_factory=TaskConfig)
    team: TeamConfig = Field(default_factory=TeamConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    monitors: MonitorsConfig = Field(default_factory=MonitorsConfig)
    verification: VerificationConfig = Field(default_factory=VerificationConfig)
    report: bool = True  # write RUN_DIR/report/ (HTML + markdown) when the run ends
    # "none" (everything on this machine), "ray://HOST:PORT", or "auto" (an existing local Ray cluster).
    cluster: str = "none"
    # Where relative paths in the config are resolved (the config file's directory); not part of the YAML.
    base_dir: Path | None = Field(None, exclude=True)

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, value: str) -> str:
        if value not in ("none", "auto") and not value.startswith("ray://"):
            raise ValueError(f"cluster must be 'none', 'auto' or 'ray://HOST:PORT', not {value!r}")
        return value

    # ----------------------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: Path | str | None = None, overrides: dict[str, Any] | None = None,
             environ: dict[str, str] | None = None) -> RunConfig:
        """Read a YAML config (or the defaults), apply ``AARLAB_RUN__…`` env vars, then ``overrides``.

        ``overrides`` maps dotted keys to values (``{"team.agents": 5}``); the CLI's flags arrive this way.
        """
        data: dict[str, Any] = {}
        base_dir = None
        if path is not None:
            path = Path(path)
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise UserError(f"config file {path} does not exist") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise UserError(f"cannot read config file {path}: {exc}") from None
            try:
                data = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" (line {mark.line + 1})" if mark is not None else ""
                raise UserError(f"config file {path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
            if not isinstance(data, dict):
                raise UserError(f"config file {path} must be a mapping of settings, not {type(data).__name__}")
            base_dir = path.resolve().parent
        for key, value in sorted((environ if environ is not None else os.environ).items()):
            if key.startswith(ENV_PREFIX):
                dotted = key[len(ENV_PREFIX):].lower().replace("__", ".")
                _set_dotted(data, dotted, yaml.safe_load(value) if value else None)
        for dotted, value in (overrides or {}).items():
            if value is not None:
                _set_dotted(data, dotted, value)
        try:
            config = cls.model_validate(data)
        except ValidationError as exc:
            raise UserError(_one_line(exc, path)) from None
        config.base_dir = base_dir
        if config.budget.total.hours is None:
            config.budget.total.hours = DEMO_HOURS if config.uses_demo else DEFAULT_HOURS
        return config

    def to_yaml(self) -> str:
        """The config as YAML, without secrets (the admin token goes to the run dir's 0600 ``admin_token``)."""
        data = self.model_dump(mode="json", exclude_none=True, exclude={"server": {"admin_token"}})
        return yaml.safe_dump(data, sort_keys=False)

    def resolve_path(self, path: Path) -> Path:
        path = Path(path).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            return self.base_dir / path
        return path

    # ----------------------------------------------------------------------------------------- models
    def agent_models(self, environ: dict[str, str] | None = None) -> list[str]:
        """The model spec of each agent (the demo researcher when none is set and no API key is there)."""
        env = os.environ if environ is None else environ
        if self.team.models:
            pool = self.team.models
        elif self.team.model:
            pool = [self.team.model]
        else:
            pool = [next((m for var, m in DEFAULT_MODELS if env.get(var)), DEMO_MODEL)]
        return [pool[i % len(pool)] for i in range(self.team.agents)]

    def model_options(self, spec: str) -> dict[str, Any]:
        """The options ``aarlab.llm.get_model`` needs for a researcher's model spec (``base_url``, ``api_key``).

        Empty for the demo researcher and when the team sets no ``base_url``/``api_key_env``.
        """
        if is_demo_model(spec) or spec.partition(":")[0] == "scripted":
            return {}
        options: dict[str, Any] = {}
        if self.team.base_url:
            options["base_url"] = self.team.base_url
        if self.team.api_key_env:
            key = os.environ.get(self.team.api_key_env)
            if not key:
                raise UserError(f"team.api_key_env: {self.team.api_key_env} is not set in the environment")
            options["api_key"] = key
        return options

    @property
    def uses_demo(self) -> bool:
        """Whether some agent is the offline demo researcher (no API key needed, no real model)."""
        return any(is_demo_model(m) for m in self.agent_models())

    # ----------------------------------------------------------------------------------------- checks
    def check(self) -> None:
        """Check the config against this machine; raise ``UserError`` with one line on the first problem."""
        self._check_task()
        for spec in set(self.agent_models()):
            check_model_spec(spec, **self.model_options(spec))
        for spec in {*filter(None, [self.team.consult_model, self.monitors.judge_model])}:
            check_model_spec(spec)
        self._check_sandbox()
        if self.cluster != "none":
            from aarlab.errors import require

            require("ray", "ray")
        if self.server.url and not (self.server.admin_token or os.environ.get("AARLAB_ADMIN_TOKEN")):
            raise UserError("server.url is set: give server.admin_token or AARLAB_ADMIN_TOKEN to create agents there")

    def _check_task(self) -> None:
        if self.task.dir is not None:
            from aarlab.w2s.taskdir import TaskDir

            TaskDir(self.resolve_path(self.task.dir)).check()
            return
        if self.task.synthetic is not None:
            return
        check_task_settings(self.task)

    def _check_sandbox(self) -> None:
        backend = self.sandbox.backend
        if self.cluster == "none" and self.sandbox.gpus != int(self.sandbox.gpus):
            raise UserError(f"sandbox.gpus: {self.sandbox.gpus:g} GPUs per agent; a fraction only works on a Ray "
                            "cluster (--cluster), where it is the actor's resource request")
        if backend == "process" and not self.sandbox.allow_unisolated:
            raise UserError(
                "sandbox.backend 'process' runs agents' commands with no isolation at all; "
                "set sandbox.allow_unisolated: true if you really mean it"
            )
        if self.cluster != "none":
            return  # the backend is checked on the cluster's nodes, not here
        try:
            from aarlab.sandbox import check_backend
        except ImportError:
            return
        ok, reason = check_backend(backend)
        if not ok:
            raise UserError(f"sandbox backend {backend!r} cannot run here: {reason}")


def check_task_settings(task: TaskConfig) -> None:
    """Check a task's preparation settings without downloading or training anything.

    The dataset's name must be registered; for BIG-bench, the task name is checked
    against the archive when it is already cached (a fresh machine downloads it only when preparing).
    """
    from aarlab.w2s.datasets import check_dataset_spec

    try:
        check_dataset_spec(task.dataset)
    except UserError as exc:
        raise UserError(f"task.dataset: {exc}") from None
    # The models are checked by ``prepare`` itself, before anything is written (their registry imports torch).


def is_demo_model(spec: str) -> bool:
    """``scripted:demo``, ``scripted:demo-light`` (or ``demo:<anything>``): the offline demo researcher."""
    provider, _, name = spec.partition(":")
    return provider == "demo" or (provider == "scripted" and name in ("demo", "demo-light"))


def check_model_spec(spec: str, **options: Any) -> None:
    """Fail early on an unknown provider or a missing API key, without calling any API.

    ``options`` are those of ``aarlab.llm.get_model`` (``base_url``, ``api_key``): a model on a local
    OpenAI-compatible server at ``base_url`` needs no key.
    """
    if ":" not in spec:
        raise UserError(f"model {spec!r} must be PROVIDER:MODEL, e.g. anthropic:claude-sonnet-4-5 or scripted:demo")
    provider = spec.split(":", 1)[0]
    if is_demo_model(spec):
        return
    # A missing key is the commonest mistake; say so before importing the provider's SDK (slow).
    if (provider in API_KEY_ENV and not os.environ.get(API_KEY_ENV[provider])
            and not options.get("base_url") and not options.get("api_key")):
        raise UserError(f"model {spec} needs {API_KEY_ENV[provider]} in the environment "
                        "(or team.base_url for a local OpenAI-compatible server)")
    try:
        from aarlab.llm import check_model
    except ImportError:
        check_model = None
    if check_model is not None:
        check_model(spec, **options)
        return
    if provider not in (*API_KEY_ENV, "scripted"):
        raise UserError(f"unknown model provider {provider!r} in {spec!r}; known: anthropic, openai, scripted, demo")


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def _one_line(exc: ValidationError, path: Path | None, prefix: str = "") -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown setting (check its spelling)"
    where = f"config {path}" if path else "config"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{where}: {loc or 'top level'}: {msg}{more}"

