"""The [execution] and [connection] sections: how requests are sent, and where the model is."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from mmad.run.config.base import Bool, Float, Int, Section, recorded


class ExecutionConfig(Section):
    """How requests are sent."""

    concurrency: Int = Field(default=16, ge=1, le=4096, description="requests in flight at most")
    max_retries: Int = Field(default=5, ge=0, le=100, description="retries per request")
    timeout_s: Float = Field(default=120.0, gt=0, le=86400, description="seconds per request")
    retry_base_s: Float = Field(default=1.0, ge=0, le=3600, description="seconds before the first retry (doubling)")
    retry_max_s: Float = Field(default=60.0, ge=0, le=3600, description="seconds between retries at most")
    max_cost: Float | None = Field(default=None, gt=0, description="stop cleanly once this many dollars are spent")
    max_errors: Int = Field(default=20, ge=0, description="stop after this many failed requests in a row (0: never)")
    prices: str | None = Field(
        default=None, description='a JSON file of {"model": [input $/M, output $/M]} (a path, not inline JSON)'
    )
    cache: Bool = Field(default=True, description="reuse and store responses (no-cache: neither)")
    cache_dir: str | None = Field(default=None, description="the response cache's folder (default: $MMAD_CACHE_DIR)")
    engine: Literal["local", "ray"] = Field(
        default="local", description="local: this process asks; ray: a pool of Ray actors (or Ray Data LLM) asks"
    )
    ray_address: str | None = Field(
        default=None, description="the Ray cluster to join (default $RAY_ADDRESS, else a local Ray for this run)"
    )
    ray_actors: Int = Field(default=2, ge=1, le=4096, description="Ray engine: actors holding the model (replicas)")
    ray_gpus: Float = Field(default=0.0, ge=0, le=64, description="Ray engine: GPUs per actor (in-process models)")

    @field_validator("ray_address")
    @classmethod
    def _address_given(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            msg = "must name a Ray cluster (auto, HOST:6379 or ray://HOST:10001), or be left out"
            raise ValueError(msg)
        return value

    @field_validator("prices")
    @classmethod
    def _prices_file(cls, value: str | None) -> str | None:
        # Inline JSON would be taken for a file name and fail as "No such file", far from the cause.
        if value is not None and value.lstrip().startswith(("{", "[")):
            msg = (
                'takes the path of a JSON file, not inline JSON: write {"model": [input $/M, output $/M]} '
                "to a file (prices.json) and give --prices prices.json"
            )
            raise ValueError(msg)
        return value


class ConnectionConfig(Section):
    """Where the model is and how it runs (keys are read from key_env at call time, never stored)."""

    base_url: str | None = Field(default=None, description="the server's /v1 URL (overrides the preset's)")
    key_env: str | None = Field(default=None, description="NAME of the environment variable holding the API key")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="json merged into each request body")
    text_only: Bool = Field(default=False, description="the server rejects image parts")
    device: str | None = Field(default=None, description="in-process models: cuda, cuda:1 or cpu")
    dtype: str | None = Field(default=None, description="in-process models: bfloat16, float16 or float32")
    batch_size: Int | None = Field(
        default=None, ge=1, le=65536, description="in-process models: requests generated together"
    )
    model_args: dict[str, Any] = Field(
        default_factory=dict,
        description='in-process models: json, e.g. {"tensor_parallel_size": 2} for vllm-local',
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            msg = "must start with http:// or https://, e.g. http://127.0.0.1:8000/v1"
            raise ValueError(msg)
        if value is not None and not recorded(info):
            from mmad.run.secrets import redact

            if redact(value) != value:  # run.json, the model's description and the cache key would keep it
                msg = (
                    "holds an API key: give the key in the provider's environment variable (key_env), never in the URL"
                )
                raise ValueError(msg)
        return value

    @field_validator("key_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or not value.replace("_", "a").isalnum()):
            msg = "must be the NAME of an environment variable (letters, digits, _), not a key"
            raise ValueError(msg)
        if value is not None:
            from mmad.run.secrets import key_variable

            key_variable(value)  # a server may echo the key in an error: records and logs must not keep it
        return value
