module dynamo.dev/dynamo

go 1.26
