"""The message every echo benchmark validates, shared by the three servers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Echo(BaseModel):
    type: Literal["echo"] = "echo"
    seq: int
    text: str = Field(max_length=2000)


class News(BaseModel):
    type: Literal["news"] = "news"
    seq: int
    text: str = Field(max_length=2000)
