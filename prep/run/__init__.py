"""Running a profile: decoding, long files, the stage loop, profiles, transcripts and the batch runner."""
