
$0195a2c4-7f00-7a21-b3c4-d5e6f7a8b9c0)user-0195a2c4-3b7e-7c1d-9f2a-6b8e4d1c0a57 ’(ÙÅª˜í‰Œ2 7d3c5e0b2a9f4e61b8d0c4a2f1e3b5d7B$0195a2c4-3b7e-7c1d-9f2a-6b8e4d1c0a57Jada@example.comRAda Lovelace