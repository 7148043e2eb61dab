"""Accuracy of every artifact on a labelled video set, video-level, with the drop against eager."""
