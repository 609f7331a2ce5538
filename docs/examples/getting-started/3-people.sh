# in another terminal, in the same folder: a project, a role that may create work packages
# and attach files to them, a user who holds it there, and that user's API key
affix project add demo --name "Demo project"
affix role add member view_work_packages add_work_packages edit_work_packages
affix user add bob --name "Bob Builder"
affix member add bob demo member
export KEY=$(affix apikey create bob)
