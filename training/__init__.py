# SPDX-License-Identifier: Apache-2.0
"""Command-line training, evaluation and conversion scripts of the MAXI release (thin layers over `modeling_maxi`)."""
