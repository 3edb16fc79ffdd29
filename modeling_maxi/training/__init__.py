# SPDX-License-Identifier: Apache-2.0
"""Training components of MAXI: text-bag datasets, augmentation, batching and the video-to-bag retrieval check."""
