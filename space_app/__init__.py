# SPDX-License-Identifier: Apache-2.0
"""Gradio Space for MAXI (zero-shot action recognition with heatmaps); `python -m space_app.app` launches it."""
