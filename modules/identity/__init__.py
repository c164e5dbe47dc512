"""The UnAvgLip identity adapter: the Identity Perceiver (`identity_perceiver`), the ID-CrossAttn processors
and LoRA (`id_cross_attention`), the adapter that binds both to a UNet's attention layers (`identity_adapter`),
its files in the authors' and our format (`adapter_file`, `adapter_convert`), ArcFace embeddings of reference
faces (`identity_embeddings`), and an identity ready to apply to a UNet (`identity_patch`). It may import `errors`,
`runtime`, `files`, `audio`, `video`, `face` and `musetalk`; the inference that applies an identity lives above
it, in `lipsync`.
"""
