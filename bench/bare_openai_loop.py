"""The floor for bench_eval_vs_bare.py: a bare `AsyncOpenAI` loop sending prepared requests.

Reads requests.json (each request's text parts and image files, with the image's MIME type and
OpenAI `detail` where given, in order, made by the bench from mmad's own prompts), sends them with
at most CONCURRENCY in flight, and prints how many it sent.
It does what any client must do and nothing more: read each image once, base64 it, send.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path

from openai import AsyncOpenAI, DefaultAioHttpClient


async def main(requests_file: Path, base_url: str, concurrency: int) -> None:
    requests = json.loads(requests_file.read_text())
    urls: dict[str, str] = {}

    def image_url(part: dict[str, str]) -> dict[str, str]:
        path = part["image"]
        if path not in urls:
            mime = part.get("mime", "image/jpeg")
            urls[path] = f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()
        url = {"url": urls[path]}
        if part.get("detail"):
            url["detail"] = part["detail"]
        return url

    client = AsyncOpenAI(api_key="none", base_url=base_url, max_retries=0, http_client=DefaultAioHttpClient())
    queue = iter(requests)
    sent = 0

    async def worker() -> None:  # CONCURRENCY of these pull from one iterator: the usual bounded loop
        nonlocal sent
        for request in queue:
            content = [
                {"type": "text", "text": part["text"]}
                if "text" in part
                else {"type": "image_url", "image_url": image_url(part)}
                for part in request
            ]
            await client.chat.completions.create(
                model="random", messages=[{"role": "user", "content": content}], max_tokens=128, temperature=0.0
            )
            sent += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.close()
    print(sent)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
