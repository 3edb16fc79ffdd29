# SPDX-License-Identifier: Apache-2.0
"""Thin command-line scripts over `modeling_maxi.text_bags`: build, merge and import MAXI text-bag datasets, and
extract the corpus verbs of an over-specified dictionary. Not installed: run them from the repository."""
