"""Names shared across the workbench: the voice pipeline's latency parts and call outcomes.

They are columns and values of the warehouse (collectors/schema.py). The stages overlap in time,
so they are never summed; e2e_ms is measured, not derived.
"""

# Per-turn latency parts, in pipeline order, then the end-to-end turn latency.
PIPELINE_STAGES = ("eou_delay_ms", "stt_ms", "llm_ttft_ms", "tts_ttfb_ms")
STAGES = (*PIPELINE_STAGES, "e2e_ms")

OUTCOMES = ("resolved", "escalated", "abandoned", "failed")
