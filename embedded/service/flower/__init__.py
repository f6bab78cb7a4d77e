"""Flower 2.x's HTTP API (its /api/... paths, parameters and answers) on the stack's own server, so the
scripts and n8n workflows written for Flower keep working when pointed at Stalk (issue #22)."""

from stalk.embedded.service.flower.listener import FlowerListener

__all__ = ["FlowerListener"]
