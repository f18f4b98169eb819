
$0195a2c4-7f00-7a21-b3c4-d5e6f7a8b9c0*order-0195a2c4-5d10-7e44-8a3b-1f6c9d2e7b08 ’(ÙÅª˜í‰Œ2 7d3c5e0b2a9f4e61b8d0c4a2f1e3b5d7Bpen