"""Command-line layers over `modeling_maxi.text_bags`: build, merge and import MAXI text-bag datasets."""
