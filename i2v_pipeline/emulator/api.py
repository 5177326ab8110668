"""AKOOL's endpoints (akool-api.md §2–§9) as aiohttp handlers over the emulator's State.

Tolerant like the real service: `webhookurl` or `webhookUrl`, `audio_type` as int or string,
and the batch fields the docs dropped but the official demo still sends are stored, not refused.
Business errors are HTTP 200 with the `{code, msg}` envelope.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web

from ..akool_codes import NO_CREDIT, NOT_FOUND, OK, PARAM_ERROR, STATUS_SUCCEEDED
from .account import Job, State

EFFECTS = [
    ("687632b95a0f52799eeed701", "Squish", "squish_89244231312"),
    ("687632ba5a0f52799eeed887", "Cakeify", "cakeify_24743216"),
    ("687632bc5a0f52799eeed929", "Samurai", "samurai_99757865"),
    ("687632bd5a0f52799eeed9a1", "Inflate", "inflate_31415926"),
    ("687632be5a0f52799eeed9b2", "Melt", "melt_27182818"),
    ("687632bf5a0f52799eeed9c3", "Crush", "crush_16180339"),
    ("687632c05a0f52799eeed9d4", "Levitate", "levitate_14142135"),
    ("687632c15a0f52799eeed9e5", "Explode", "explode_17320508"),
    ("687632c25a0f52799eeed9f6", "Rotate", "rotate_22360679"),
    ("687632c35a0f52799eeeda07", "Zoom Out", "zoomout_26457513"),
]
STORED = (
    "image_url",
    "prompt",
    "negative_prompt",
    "extend_prompt",
    "resolution",
    "audio_url",
    "is_premium_model",
    "effect_code",
    "model_name",
    "last_image_url",
    "generate_audio",
    "multi_prompt",
)


def envelope(code: int, msg: str, data: Any = None, **extra: Any) -> web.Response:
    """AKOOL's answer shape: `{code, msg, data}`, the HTTP status following the code."""
    body: dict[str, Any] = {"code": code, "msg": msg}
    if data is not None:
        body["data"] = data
    body.update(extra)
    return json_response(body, code)


def json_response(body: dict[str, Any], code: int, status: int = 200) -> web.Response:
    """orjson: a 100-result resultsByIds answer serialises ~8x faster than with json."""
    response = web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
    response["code"] = code  # for the request log, without parsing the body again
    return response


class BadRequest(Exception):
    """A request the real API refuses: answered as an envelope with code (not a 500)."""

    def __init__(self, msg: str, code: int = PARAM_ERROR) -> None:
        super().__init__(msg)
        self.msg, self.code = msg, code


async def body_of(request: web.Request) -> dict[str, Any]:
    """The JSON object body of request, or BadRequest as AKOOL words it."""
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise BadRequest("parameter validate error: body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("parameter validate error: body must be an object")
    return body


def _int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)  # the demo sends audio_type as "1"
    except (TypeError, ValueError):
        raise BadRequest(f"parameter validate error: {key} must be an integer") from None


class Api:
    """The AKOOL image2video endpoints over one State, answering as the real API documents."""

    def __init__(self, state: State) -> None:
        self.state = state

    # ------------------------------------------------------------------ create
    def _fields(self, body: dict[str, Any], *, batch: bool) -> tuple[dict[str, Any], int]:
        for key in ("image_url", "prompt"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise BadRequest(f"parameter validate error: {key} cannot be empty")
        model_name = str(body.get("model_name") or "AkoolImage2VideoFastV1")
        model = self.state.catalog.models.get(model_name)
        if model is None:
            raise BadRequest(f"parameter validate error: model_name {model_name!r} does not exist")
        seconds = _int(body, "video_length")
        if seconds is None:
            raise BadRequest("parameter validate error: video_length cannot be empty")
        if model.durations and seconds not in model.durations:
            raise BadRequest(f"parameter validate error: video_length {seconds} is not supported")
        resolution = body.get("resolution")
        if model.resolutions and resolution not in model.resolutions:
            raise BadRequest(
                f"parameter validate error: resolution {resolution!r} is not supported"
            )
        count = _int(body, "count") or 1
        if batch and not 1 <= count <= model.max_count:
            raise BadRequest(f"parameter validate error: count must be 1..{model.max_count}")
        audio_type = _int(body, "audio_type")
        if audio_type is not None and audio_type not in (1, 2, 3):
            raise BadRequest("parameter validate error: audio_type must be 1, 2 or 3")
        if audio_type == 2 and not body.get("audio_url"):
            raise BadRequest("parameter validate error: audio_url is required when audio_type is 2")
        fields = {k: body[k] for k in STORED if k in body}
        fields.update(
            video_length=seconds,
            model_name=model_name,
            uid=self.state.config.uid,
            team_id=self.state.config.team_id,
            webhookUrl=body.get("webhookurl") or body.get("webhookUrl") or "",
            file_name=f"Image2Video_{str(body['prompt'])[:24]}.mp4",
        )
        if audio_type is not None:
            fields["audio_type"] = audio_type
        effect = next((e for e in EFFECTS if e[2] == body.get("effect_code")), None)
        if effect:
            fields["effect_name"] = effect[1]
        return fields, count

    def _charge(self, fields: dict[str, Any], count: int, *, batch: bool) -> list[Job]:
        cost = self.state.price(fields) * count
        if self.state.account.credits < cost:
            raise BadRequest("Insufficient credit balance", NO_CREDIT)
        return self.state.create(fields, count, batch=batch)

    async def create(self, request: web.Request) -> web.Response:
        fields, _ = self._fields(await body_of(request), batch=False)
        (job,) = self._charge(fields, 1, batch=False)
        return envelope(OK, "OK", job.to_api(self.state.base_url))

    async def batch(self, request: web.Request) -> web.Response:
        fields, count = self._fields(await body_of(request), batch=True)
        jobs = self._charge(fields, count, batch=True)
        data = {"successList": [j.to_api(self.state.base_url) for j in jobs], "errorList": []}
        return envelope(OK, "OK", data)

    # ------------------------------------------------------------------ read
    @staticmethod
    def _ids(body: dict[str, Any], msg: str) -> list[str]:
        ids = body.get("_ids")
        if not isinstance(ids, str) or not ids.strip():
            raise BadRequest(msg)  # the real one refuses arrays and `ids`
        return [i.strip() for i in ids.split(",") if i.strip()]

    async def results(self, request: web.Request) -> web.Response:
        ids = self._ids(await body_of(request), "Failed to get results")
        base = self.state.base_url
        return envelope(OK, "OK", {"result": [j.to_api(base) for j in self.state.find(ids)]})

    async def effects(self, request: web.Request) -> web.Response:
        result = [
            {
                "_id": i,
                "create_time": 1752576694502,
                "name": name,
                "effect_code": code,
                "logo": f"https://static.website-files.org/assets/Image_to_Video/Lora/{name}.png",
                "video_url": f"https://static.website-files.org/assets/Image_to_Video/Lora/{name}.mp4",
            }
            for i, name, code in EFFECTS
        ]
        return envelope(OK, "Success", {"result": result, "count": len(result)})

    async def models(self, request: web.Request) -> web.Response:
        types = request.query.getall("types[]", []) or request.query.getall("types", [])
        if not types:
            raise BadRequest("parameter validate error: types cannot be empty")
        wanted = {int(t) for t in types if str(t).isdigit()}
        models = [
            dict(m.raw) for m in self.state.catalog.models.values() if m.raw.get("type") in wanted
        ]
        return envelope(OK, "OK", models)

    async def credit(self, request: web.Request) -> web.Response:
        return envelope(OK, "OK", {"credit": round(self.state.account.credits, 2)})

    # ------------------------------------------------------------------ change
    async def update_audio(self, request: web.Request) -> web.Response:
        """Add audio to a completed video: a new job, charged 5 credits per 5 s of video."""
        body = await body_of(request)
        pre = self.state.find([str(body.get("pre_video_id", ""))])
        if not pre:
            raise BadRequest("Content does not exist", NOT_FOUND)
        if pre[0].status != STATUS_SUCCEEDED:
            raise BadRequest("parameter validate error: pre_video_id must be a completed video")
        audio_type = _int(body, "audio_type")
        if audio_type not in (1, 2):
            raise BadRequest("parameter validate error: audio_type must be 1 or 2")
        if audio_type == 2 and not body.get("audio_url"):
            raise BadRequest("parameter validate error: audio_url is required when audio_type is 2")
        src = pre[0]
        fields = {
            **src.fields,
            "pre_video_id": src.id,
            "audio_type": audio_type,
            "audio_url": body.get("audio_url", ""),
            "only_add_audio": True,
        }
        price = 5 * max(1, src.video_length // 5)
        if self.state.account.credits < price:
            raise BadRequest("Insufficient credit balance", NO_CREDIT)
        (job,) = self.state.create(fields, 1, batch=False, price=price)
        return envelope(OK, "OK", job.to_api(self.state.base_url))

    async def delete(self, request: web.Request) -> web.Response:
        ids = self._ids(await body_of(request), "parameter validate error: _ids cannot be empty")
        ok, refused = self.state.delete(ids)
        return envelope(OK, "Delete successfully", {"successIds": ok, "noPermissionItems": refused})
