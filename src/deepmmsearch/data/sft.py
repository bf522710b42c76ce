"""A trajectory as an SFT example: the conversation the policy saw, each turn marked trainable or not.

Only the assistant's turns are trainable; the system prompt, the question and every tool-result turn are
context. The mark comes from the trajectory's messages, set once by the agent loop (Message.trainable).
"""

from __future__ import annotations

from deepmmsearch.records import Message, Trajectory


def message_row(message: Message) -> dict:
    """One turn: its role and text, whether it shows the image, whether it is trained on, and what it is."""
    if message.role == "assistant":
        kind = "generation"
    elif message.tool is not None:
        kind = "tool_result"
    else:
        kind = "prompt"
    return {
        "role": message.role,
        "content": message.text,
        "image": message.image is not None,
        "train": message.trainable,
        "kind": kind,
    }


def to_sft_row(trajectory: Trajectory) -> dict:
    """The row the SFT dataset stores for one kept trajectory."""
    question = trajectory.question
    return {
        "id": question.id,
        "image": question.image,
        "messages": [message_row(m) for m in trajectory.messages],
        "category": question.category or "unknown",
        "requires_search": bool(question.requires_search),
    }
