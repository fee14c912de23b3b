"""
@article{RamirezAportela2019,
title = "DeepRes: a new deep-learning- and aspect-based local resolution method for electron-microscopy maps",
journal = "IUCrJ",
volume = "6",
number = "6",
pages = "1054--1063",
year = "2019",
doi = "10.1107/S2052252519011692",
url = "https://doi.org/10.1107/S2052252519011692",
author = "Ramírez-Aportela, E. and Mota, J. and Conesa, P. and Carazo, J. M. and Sorzano, C. O. S."
}
"""
